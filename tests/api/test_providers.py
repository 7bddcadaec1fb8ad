"""Every chatbot-ui provider route, streamed from its own fake through the real server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Running, ServerFactory
from tests.fakes._server import FakeServer
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import DEFAULT_MODELS as OPENAI_MODELS
from tests.fakes.fake_openai import FakeOpenAI

EXTRA_MODELS = ("llama-3.3-70b-versatile", "sonar", "openai/gpt-4o", "my-llama")


@dataclass(frozen=True)
class Case:
    route: str
    label: str
    make_fake: Callable[[], FakeServer]
    model: str  # an upstream model the fake knows
    base_setting: str | None = None
    key_field: str | None = None
    messages_field: str = "messages"  # where the fake's request carries the conversation

    def __str__(self) -> str:
        return self.route


CASES = [
    Case("openai", "OpenAI", lambda: FakeOpenAI(), "gpt-4o", "openai_base_url", "openai_api_key"),
    Case("azure", "Azure OpenAI", lambda: FakeOpenAI(), "gpt-35-turbo"),
    Case(
        "anthropic",
        "Anthropic",
        lambda: FakeAnthropic(),
        "claude-3-haiku-20240307",
        "anthropic_base_url",
        "anthropic_api_key",
    ),
    Case(
        "google",
        "Google Gemini",
        lambda: FakeGemini(),
        "gemini-2.5-flash",
        "google_base_url",
        "google_gemini_api_key",
        messages_field="contents",
    ),
    Case(
        "groq",
        "Groq",
        lambda: FakeOpenAI(models=(*OPENAI_MODELS, *EXTRA_MODELS)),
        "llama-3.3-70b-versatile",
        "groq_base_url",
        "groq_api_key",
    ),
    Case(
        "perplexity",
        "Perplexity",
        lambda: FakeOpenAI(models=(*OPENAI_MODELS, *EXTRA_MODELS)),
        "sonar",
        "perplexity_base_url",
        "perplexity_api_key",
    ),
    Case(
        "openrouter",
        "OpenRouter",
        lambda: FakeOpenAI(models=(*OPENAI_MODELS, *EXTRA_MODELS)),
        "openai/gpt-4o",
        "openrouter_base_url",
        "openrouter_api_key",
    ),
    Case(
        "custom",
        "Custom model",
        lambda: FakeOpenAI(models=(*OPENAI_MODELS, *EXTRA_MODELS)),
        "my-llama",
    ),
    Case("ollama", "Ollama", lambda: FakeOllama(), "llama3.2", "ollama_base_url"),
]
KEYED = [c for c in CASES if c.route != "ollama"]


@dataclass
class Setup:
    case: Case
    fake: FakeServer
    server: Running
    model: str = ""

    async def use(self, upstream_model: str, key: str | None = None) -> dict[str, Any]:
        """Point the caller's profile (or custom record) at the fake; the chat body to send."""
        key = (self.fake.api_key or "") if key is None else key
        self.model = upstream_model
        body = self.server.chat_body("Tell me a story", model=upstream_model)
        client, auth = self.server.client, self.server.auth
        if self.case.route == "azure":
            fields = {
                "azure_openai_api_key": key,
                "azure_openai_endpoint": str(self.fake.root_url),
                "azure_openai_35_turbo_id": upstream_model,
            }
            assert (
                await client.patch("/api/profile", json=fields, headers=auth)
            ).status_code == 200
            body["chatSettings"]["model"] = "gpt-3.5-turbo"
        elif self.case.route == "custom":
            record = {
                "name": f"rec-{upstream_model}-{len(self.fake.requests)}-{key[-4:]}",
                "model_id": upstream_model,
                "base_url": str(self.fake.base_url),
                "api_key": key,
                "context_length": 2048,
            }
            resp = await client.post("/api/custom-models", json=record, headers=auth)
            assert resp.status_code == 201, resp.text
            body["customModelId"] = resp.json()["id"]
        elif self.case.key_field is not None:
            fields = {self.case.key_field: key}
            assert (
                await client.patch("/api/profile", json=fields, headers=auth)
            ).status_code == 200
        return body

    def expected(self) -> str:
        sent = self.fake.requests[-1].json
        return self.fake.expected_reply(sent[self.case.messages_field], model=self.model)


@pytest.fixture(params=CASES, ids=str)
async def setup(request: pytest.FixtureRequest, make_server: ServerFactory) -> AsyncIterator[Setup]:
    case: Case = request.param
    fake = case.make_fake()
    base = await fake.start()
    try:
        overrides = {case.base_setting: base} if case.base_setting else {}
        server = await make_server(stored_key=None, **overrides)
        yield Setup(case, fake, server)
    finally:
        await fake.stop()


async def chat(
    setup: Setup, body: dict[str, Any]
) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    pieces: list[tuple[float, bytes]] = []
    async with setup.server.client.stream(
        "POST", f"/api/chat/{setup.case.route}", json=body, headers=setup.server.auth
    ) as resp:
        async for chunk in resp.aiter_raw():
            pieces.append((time.monotonic(), chunk))
    return resp, pieces


def as_json(pieces: list[tuple[float, bytes]]) -> Any:
    return json.loads(b"".join(p for _, p in pieces))


async def test_streams_the_reply_trimmed(setup: Setup) -> None:
    setup.fake.reply = "  \n Once upon a time, a gateway relayed every word."
    resp, pieces = await chat(setup, await setup.use(setup.case.model))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    text = b"".join(p for _, p in pieces).decode()
    assert text == "Once upon a time, a gateway relayed every word."
    assert setup.expected().lstrip() == text


async def test_text_arrives_incrementally(setup: Setup) -> None:
    resp, pieces = await chat(setup, await setup.use("fake-slow"))
    assert resp.status_code == 200
    assert len(pieces) >= 4
    assert pieces[-1][0] - pieces[0][0] > 0.1
    assert b"".join(p for _, p in pieces).decode() == setup.expected()


@pytest.mark.parametrize("model", ["fake-split-utf8"])
async def test_multibyte_characters_stay_whole(setup: Setup, model: str) -> None:
    resp, pieces = await chat(setup, await setup.use(model))
    assert resp.status_code == 200
    for _, piece in pieces:
        piece.decode("utf-8")
    assert b"".join(p for _, p in pieces).decode() == setup.expected().lstrip()


async def test_upstream_500_comes_back_readable(setup: Setup) -> None:
    resp, pieces = await chat(setup, await setup.use("fake-500"))
    assert resp.status_code == 500
    message = as_json(pieces)["message"]
    assert message.startswith(f"{setup.case.label} answered 500: ")
    assert "no readable message" not in message


async def test_upstream_failure_mid_stream_aborts(setup: Setup) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await chat(setup, await setup.use("fake-drop"))


async def test_client_going_away_cancels_upstream(setup: Setup) -> None:
    import asyncio

    body = await setup.use("fake-stall")
    task = asyncio.create_task(chat(setup, body))
    await setup.fake.wait_for_active_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await setup.fake.wait_for_active_requests(0, within=0.5)


@pytest.fixture(params=KEYED, ids=str)
async def keyed(request: pytest.FixtureRequest, make_server: ServerFactory) -> AsyncIterator[Setup]:
    case: Case = request.param
    fake = case.make_fake()
    base = await fake.start()
    try:
        overrides = {case.base_setting: base} if case.base_setting else {}
        yield Setup(case, fake, await make_server(stored_key=None, **overrides))
    finally:
        await fake.stop()


async def test_wrong_key_is_named(keyed: Setup) -> None:
    resp, pieces = await chat(keyed, await keyed.use(keyed.case.model, key="wrong-key-0123456789"))
    assert resp.status_code == 401
    expected = (
        "The custom model's server refused its API key. "
        "Please fix the key in the custom model's settings."
        if keyed.case.route == "custom"
        else f"{keyed.case.label} API Key is incorrect. Please fix it in your profile settings."
    )
    assert as_json(pieces) == {"message": expected}


async def test_missing_key_is_named(keyed: Setup) -> None:
    body = keyed.server.chat_body(model=keyed.case.model)
    if keyed.case.route == "azure":
        body["chatSettings"]["model"] = "gpt-3.5-turbo"
        expected = (
            "Azure resources not found: set the Azure OpenAI endpoint, API key, "
            "gpt-3.5-turbo deployment in your profile settings."
        )
    elif keyed.case.route == "custom":
        body["customModelId"] = "12345"
        expected = (
            "Custom model not found: send the id of one of your custom models as "
            "customModelId (GET /api/custom-models lists them)."
        )
    else:
        expected = f"{keyed.case.label} API Key not found. Please set it in your profile settings."
    resp, pieces = await chat(keyed, body)
    assert resp.status_code == 400
    assert as_json(pieces) == {"message": expected}
    assert keyed.fake.requests == []


async def test_rate_limit_passes_retry_after(keyed: Setup) -> None:
    resp, pieces = await chat(keyed, await keyed.use("fake-429"))
    assert resp.status_code == 429
    assert as_json(pieces)["message"].startswith(f"{keyed.case.label} answered 429: ")
    if keyed.case.route != "google":  # Gemini puts the delay in the body's RetryInfo
        assert resp.headers["retry-after"] == "7"


ENV_CASES = [c for c in KEYED if c.key_field is not None]


@pytest.mark.parametrize("case", ENV_CASES, ids=str)
async def test_environment_key_overrides_the_stored_one(
    make_server: ServerFactory, case: Case
) -> None:
    assert case.key_field is not None
    assert case.base_setting is not None
    fake = case.make_fake()
    base = await fake.start()
    try:
        server = await make_server(
            stored_key=None, **{case.base_setting: base, case.key_field: str(fake.api_key)}
        )
        setup = Setup(case, fake, server)
        # The stored key is wrong; the operator's key from the environment wins.
        body = await setup.use(case.model, key="stored-but-wrong-0123")
        resp, pieces = await chat(setup, body)
        assert resp.status_code == 200, as_json(pieces)
        assert b"".join(p for _, p in pieces).decode() == setup.expected()
        keys = await server.client.get("/api/keys", headers=server.auth)
        assert keys.json()["isUsingEnvKeyMap"][case.route] is True
    finally:
        await fake.stop()
