"""Providers that came in as one declaration each (providers/builtin.py) plus catalogue entries:
DeepSeek, xAI, Together, Fireworks, Cerebras. Each is served on both chat APIs by the
OpenAI-compatible family, against the fake OpenAI-compatible server over TCP: a key stored per
user, or the operator's from its environment variable; its models listed; its rules applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from chatwire.catalogue import Catalogue
from chatwire.providers.builtin import CEREBRAS, DEEPSEEK, FIREWORKS, TOGETHER, XAI
from chatwire.providers.declaration import Provider
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_openai import FakeOpenAI

NEW = [DEEPSEEK, XAI, TOGETHER, FIREWORKS, CEREBRAS]
BASE_URLS = {
    "deepseek": "https://api.deepseek.com",
    "xai": "https://api.x.ai/v1",
    "together": "https://api.together.xyz/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "cerebras": "https://api.cerebras.ai/v1",
}
ENV = {
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "together": "TOGETHER_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "cerebras": "CEREBRAS_API_KEY",
}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Tell me about the sea"}]


def in_use(provider: Provider) -> str:
    models = Catalogue.load().models[provider.name]
    return next(name for name, entry in models.items() if not entry.retired)


@dataclass
class Wired:
    provider: Provider
    fake: FakeOpenAI
    server: Running
    model: str

    def sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.server.url}/v1", api_key=self.server.token, max_retries=0
        )

    async def store_key(self, key: str) -> None:
        resp = await self.server.client.patch(
            "/api/profile", json={f"{self.provider.name}_api_key": key}, headers=self.server.auth
        )
        assert resp.status_code == 200, resp.text


async def wire(
    make_server: ServerFactory, provider: Provider, key: str, **settings: Any
) -> tuple[FakeOpenAI, Running, str]:
    model = in_use(provider)
    fake = FakeOpenAI(api_key=key, models=[model])
    base = await fake.start()
    server = await make_server(stored_key=None, **{f"{provider.name}_base_url": base, **settings})
    return fake, server, model


@pytest.fixture(params=NEW, ids=lambda p: p.name)
async def wired(request: pytest.FixtureRequest, make_server: ServerFactory) -> AsyncIterator[Wired]:
    provider: Provider = request.param
    fake, server, model = await wire(make_server, provider, f"{provider.name}-user-key-0123")
    try:
        found = Wired(provider, fake, server, model)
        await found.store_key(fake.api_key or "")
        yield found
    finally:
        await fake.stop()


@pytest.mark.parametrize("provider", NEW, ids=lambda p: p.name)
def test_each_is_one_declaration_with_its_documented_base_and_variable(provider: Provider) -> None:
    assert provider.base_url == BASE_URLS[provider.name]
    assert provider.family.name == "openai"
    [credential] = provider.credentials
    assert (credential.field, credential.env) == (f"{provider.name}_api_key", ENV[provider.name])
    assert provider.base_url_setting == f"CHATWIRE_{provider.name.upper()}_BASE_URL"


async def test_chatbot_ui_route_streams_from_it(wired: Wired) -> None:
    body = wired.server.chat_body("Tell me about the sea", model=wired.model)
    resp = await wired.server.client.post(
        f"/api/chat/{wired.provider.name}", json=body, headers=wired.server.auth
    )
    assert resp.status_code == 200, resp.text
    sent = wired.fake.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {wired.fake.api_key}"
    assert sent.json["model"] == wired.model
    assert sent.json["stream"] is True
    assert resp.text == wired.fake.expected_reply(sent.json["messages"], model=wired.model)
    # Usage is asked for where the provider sends it only when asked.
    assert ("stream_options" in sent.json) == wired.provider.rules.ask_for_usage


async def test_openai_route_streams_from_it_with_usage(wired: Wired) -> None:
    async with wired.sdk() as client:
        stream = await client.chat.completions.create(
            model=f"{wired.provider.name}/{wired.model}",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    sent = wired.fake.requests[-1].json
    assert text == wired.fake.expected_reply(sent["messages"], model=wired.model)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert {c.model for c in chunks} == {f"{wired.provider.name}/{wired.model}"}


async def test_its_models_are_listed_once_a_key_is_stored(wired: Wired) -> None:
    listed = (await wired.server.client.get("/api/models", headers=wired.server.auth)).json()
    assert wired.model in [m["modelId"] for m in listed[wired.provider.name]]
    async with wired.sdk() as client:
        ids = [model.id async for model in client.models.list()]
    assert f"{wired.provider.name}/{wired.model}" in ids


@pytest.mark.parametrize("provider", NEW, ids=lambda p: p.name)
async def test_the_operators_key_from_its_environment_variable(
    make_server: ServerFactory, provider: Provider
) -> None:
    env_key = f"{provider.name}-operator-key-0123"
    variable = ENV[provider.name].lower()
    fake, server, model = await wire(make_server, provider, env_key, **{variable: env_key})
    try:
        keys = (await server.client.get("/api/keys", headers=server.auth)).json()
        assert keys["isUsingEnvKeyMap"][provider.name] is True
        body = server.chat_body("Tell me about the sea", model=model)
        resp = await server.client.post(
            f"/api/chat/{provider.name}", json=body, headers=server.auth
        )
        assert resp.status_code == 200, resp.text
        assert fake.requests[-1].headers["authorization"] == f"Bearer {env_key}"
    finally:
        await fake.stop()


@pytest.mark.parametrize("provider", NEW, ids=lambda p: p.name)
async def test_without_a_key_the_message_says_where_to_set_it(
    make_server: ServerFactory, provider: Provider
) -> None:
    fake, server, model = await wire(make_server, provider, "k-0123456789")
    try:
        body = server.chat_body("Hi", model=model)
        resp = await server.client.post(
            f"/api/chat/{provider.name}", json=body, headers=server.auth
        )
        assert resp.status_code == 400
        assert resp.json()["message"] == (
            f"{provider.label} API Key not found. Please set it in your profile settings."
        )
        assert fake.requests == []
    finally:
        await fake.stop()


REFUSING = [p for p in NEW if p.rules.refuse or p.rules.one_choice]


@pytest.mark.parametrize("provider", REFUSING, ids=lambda p: p.name)
async def test_what_it_refuses_is_a_400_naming_it(
    make_server: ServerFactory, provider: Provider
) -> None:
    fake, server, model = await wire(make_server, provider, "k-0123456789")
    try:
        await Wired(provider, fake, server, model).store_key("k-0123456789")
        await refusals(Wired(provider, fake, server, model))
    finally:
        await fake.stop()


async def refusals(wired: Wired) -> None:
    refused = sorted(wired.provider.rules.refuse)
    if wired.provider.rules.one_choice:
        refused.append("n")
    values = {"n": 2, "stop": ["x"], "logprobs": True, "top_logprobs": 2}
    async with wired.sdk() as client:
        for name in refused:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(
                    model=f"{wired.provider.name}/{wired.model}",
                    messages=MESSAGES,
                    extra_body={name: values.get(name, 0.5)},
                )
            shown = "n > 1" if name == "n" else name
            assert f"{wired.provider.label} does not accept the parameter '{shown}'" in (
                caught.value.message
            )
    assert wired.fake.requests == []


async def test_the_developer_role_as_its_rules_say(wired: Wired) -> None:
    async with wired.sdk() as client:
        await client.chat.completions.create(
            model=f"{wired.provider.name}/{wired.model}",
            messages=[{"role": "developer", "content": "Be brief."}, *MESSAGES],
        )
    role = wired.fake.requests[-1].json["messages"][0]["role"]
    assert role == wired.provider.rules.roles.get("developer", "developer")
