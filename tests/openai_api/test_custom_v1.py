"""A user's custom models through /v1, with the openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import FAKE_KEY, Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral

MESSAGES: list[Any] = [{"role": "user", "content": "Hello from a custom model"}]


async def add_record(server: Running, fake: FakeMistral) -> None:
    record = {
        "name": "Local Mistral",
        "model_id": "mistral-small-latest",
        "base_url": str(fake.base_url),
        "api_key": FAKE_KEY,
        "context_length": 6000,
    }
    resp = await server.client.post("/api/custom-models", json=record, headers=server.auth)
    assert resp.status_code == 201


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


async def test_custom_model_listed_and_streamed_with_its_budget(
    server: Running, fake: FakeMistral
) -> None:
    await add_record(server, fake)
    async with sdk(server) as client:
        ids = [m.id for m in (await client.models.list()).data]
        assert "custom/mistral-small-latest" in ids
        stream = await client.chat.completions.create(
            model="custom/mistral-small-latest", messages=MESSAGES, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == fake.expected_reply(MESSAGES)
    sent = fake.requests[-1].json
    assert 5000 < sent["max_tokens"] < 6000  # the record's context, less the prompt


async def test_the_clients_own_budget_wins(server: Running, fake: FakeMistral) -> None:
    await add_record(server, fake)
    async with sdk(server) as client:
        await client.chat.completions.create(
            model="custom/Local Mistral", messages=MESSAGES, max_tokens=20
        )
    assert fake.requests[-1].json["max_tokens"] == 20


async def test_unknown_custom_model_is_not_found(server: Running) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="custom/nope", messages=MESSAGES)
    assert "no custom model 'nope'" in str(caught.value)


async def test_azure_through_v1_uses_the_deployment(make_server: ServerFactory) -> None:
    from tests.fakes.fake_openai import FakeOpenAI

    async with FakeOpenAI() as azure:
        server = await make_server(stored_key=None)
        fields = {
            "azure_openai_api_key": str(azure.api_key),
            "azure_openai_endpoint": str(azure.root_url),
            "azure_openai_35_turbo_id": "gpt-35-turbo",
        }
        assert (
            await server.client.patch("/api/profile", json=fields, headers=server.auth)
        ).status_code == 200
        async with sdk(server) as client:
            assert "azure/gpt-3.5-turbo" in [m.id for m in (await client.models.list()).data]
            stream = await client.chat.completions.create(
                model="azure/gpt-3.5-turbo",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == azure.expected_reply(MESSAGES)
        assert chunks[-1].usage is not None
        assert azure.deployments_called == ["gpt-35-turbo"]
        assert azure.requests[-1].headers["api-key"] == azure.api_key
