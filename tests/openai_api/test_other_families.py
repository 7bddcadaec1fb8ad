"""/v1/chat/completions for Anthropic, Gemini and Ollama, with the openai SDK, over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.conftest import Running, ServerFactory
from tests.fakes._server import FakeServer
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_ollama import FakeOllama

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Say hello to the gateway"},
]


@dataclass(frozen=True)
class Family:
    provider: str
    label: str
    make: Callable[[], FakeServer]
    model: str
    base_setting: str
    key_setting: str | None
    messages_field: str = "messages"

    def __str__(self) -> str:
        return self.provider


FAMILIES = [
    Family(
        "anthropic",
        "Anthropic",
        FakeAnthropic,
        "claude-3-haiku-20240307",
        "anthropic_base_url",
        "anthropic_api_key",
    ),
    Family(
        "google",
        "Google Gemini",
        FakeGemini,
        "gemini-2.5-flash",
        "google_base_url",
        "google_gemini_api_key",
        "contents",
    ),
    Family("ollama", "Ollama", FakeOllama, "llama3.2", "ollama_base_url", None),
]


@dataclass
class Wired:
    family: Family
    fake: FakeServer
    server: Running

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.server.url}/v1", api_key=self.server.token, max_retries=0
        )

    def expected(self, model: str | None = None) -> str:
        sent = self.fake.requests[-1].json[self.family.messages_field]
        return self.fake.expected_reply(sent, model=model)


@pytest.fixture(params=FAMILIES, ids=str)
async def wired(request: pytest.FixtureRequest, make_server: ServerFactory) -> AsyncIterator[Wired]:
    family: Family = request.param
    fake = family.make()
    base = await fake.start()
    try:
        overrides: dict[str, Any] = {family.base_setting: base}
        if family.key_setting:
            overrides[family.key_setting] = str(fake.api_key)
        yield Wired(family, fake, await make_server(stored_key=None, **overrides))
    finally:
        await fake.stop()


async def test_streaming_text_finish_and_usage(wired: Wired) -> None:
    name = f"{wired.family.provider}/{wired.family.model}"
    async with wired.client() as client:
        stream = await client.chat.completions.create(
            model=name, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == wired.expected()
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert {c.model for c in chunks} == {name}


async def test_text_arrives_in_pieces(wired: Wired) -> None:
    async with wired.client() as client:
        stream = await client.chat.completions.create(
            model=f"{wired.family.provider}/fake-slow", messages=MESSAGES, stream=True
        )
        pieces = [
            c.choices[0].delta.content
            async for c in stream
            if c.choices and c.choices[0].delta.content
        ]
    assert len(pieces) > 3
    assert "".join(pieces) == wired.expected(model="fake-slow")


async def test_non_streaming_answer(wired: Wired) -> None:
    async with wired.client() as client:
        answer = await client.chat.completions.create(
            model=f"{wired.family.provider}/{wired.family.model}", messages=MESSAGES, max_tokens=300
        )
    assert answer.choices[0].message.content == wired.expected()
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


async def test_max_tokens_reaches_the_provider(wired: Wired) -> None:
    async with wired.client() as client:
        await client.chat.completions.create(
            model=f"{wired.family.provider}/{wired.family.model}", messages=MESSAGES, max_tokens=77
        )
    sent = wired.fake.requests[-1].json
    budget = {
        "anthropic": lambda: sent["max_tokens"],
        "google": lambda: sent["generationConfig"]["maxOutputTokens"],
        "ollama": lambda: sent["options"]["num_predict"],
    }[wired.family.provider]()
    assert budget == 77


async def test_upstream_errors_are_the_sdks_classes(wired: Wired) -> None:
    async with wired.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model=f"{wired.family.provider}/fake-500", messages=MESSAGES, stream=True
            )
    assert f"{wired.family.label} answered 500" in str(caught.value)


async def test_parameters_not_translated_yet_are_a_clear_400(wired: Wired) -> None:
    async with wired.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model=f"{wired.family.provider}/{wired.family.model}",
                messages=MESSAGES,
                logprobs=True,
            )
    assert "'logprobs'" in str(caught.value)
    assert wired.fake.requests == []


async def test_failure_mid_stream_is_an_error_event(wired: Wired) -> None:
    received: list[str] = []

    async def read() -> None:
        async with wired.client() as client:
            stream = await client.chat.completions.create(
                model=f"{wired.family.provider}/fake-drop", messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                if chunk.choices:
                    received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError):
        await read()
    assert "".join(received)
