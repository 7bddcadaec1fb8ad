"""What each provider is sent: its own request shape, as its fake received it over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

IMAGE = "data:image/png;base64,iVBORw0KGgo="
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": IMAGE}},
        ],
    },
]


def body(model: str, temperature: float = 0.7) -> dict[str, Any]:
    return {"chatSettings": {"model": model, "temperature": temperature}, "messages": CONVERSATION}


async def patch(server: Running, **fields: str) -> None:
    resp = await server.client.patch("/api/profile", json=fields, headers=server.auth)
    assert resp.status_code == 200, resp.text


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def test_azure_uses_the_deployment_of_the_model(
    make_server: ServerFactory, openai_fake: FakeOpenAI
) -> None:
    server = await make_server(stored_key=None, azure_api_version="2024-10-21")
    await patch(
        server,
        azure_openai_api_key=str(openai_fake.api_key),
        azure_openai_endpoint=f"{openai_fake.root_url}/",
        azure_openai_35_turbo_id="gpt-35-turbo",
        azure_openai_45_turbo_id="gpt-4o",
    )
    for model, deployment in [("gpt-3.5-turbo", "gpt-35-turbo"), ("gpt-4-turbo-preview", "gpt-4o")]:
        resp = await server.client.post("/api/chat/azure", json=body(model), headers=server.auth)
        assert resp.status_code == 200, resp.text
        assert openai_fake.deployments_called[-1] == deployment
        sent = openai_fake.requests[-1]
        assert sent.path == f"/openai/deployments/{deployment}/chat/completions"
        assert sent.query == {"api-version": "2024-10-21"}
        assert sent.headers["api-key"] == openai_fake.api_key
        assert "authorization" not in sent.headers
        assert sent.json["temperature"] == 0.7

    resp = await server.client.post("/api/chat/azure", json=body("gpt-4o"), headers=server.auth)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("Model not found: Azure OpenAI serves gpt-3.5-turbo")


async def test_azure_environment_provides_the_resources(
    make_server: ServerFactory, openai_fake: FakeOpenAI
) -> None:
    server = await make_server(
        stored_key=None,
        azure_openai_api_key=str(openai_fake.api_key),
        azure_openai_endpoint=str(openai_fake.root_url),
        azure_gpt_45_vision_name="gpt-4o-mini",
    )
    resp = await server.client.post(
        "/api/chat/azure", json=body("gpt-4-vision-preview"), headers=server.auth
    )
    assert resp.status_code == 200, resp.text
    assert openai_fake.deployments_called == ["gpt-4o-mini"]


async def test_openai_sends_the_organization_and_temperature(
    make_server: ServerFactory, openai_fake: FakeOpenAI
) -> None:
    server = await make_server(stored_key=None, openai_base_url=str(openai_fake.base_url))
    await patch(server, openai_api_key=str(openai_fake.api_key), openai_organization_id="org-42")
    resp = await server.client.post(
        "/api/chat/openai", json=body("gpt-4o", 1.7), headers=server.auth
    )
    assert resp.status_code == 200, resp.text
    sent = openai_fake.requests[-1]
    assert sent.headers["openai-organization"] == "org-42"
    assert sent.headers["authorization"] == f"Bearer {openai_fake.api_key}"
    assert sent.json["temperature"] == 1.7  # inside gpt-4o's 0..2
    assert "max_tokens" not in sent.json
    assert sent.json["messages"] == CONVERSATION


async def test_perplexity_gets_only_model_and_messages(
    make_server: ServerFactory,
) -> None:
    async with FakeOpenAI(models=["sonar"]) as fake:
        server = await make_server(stored_key=None, perplexity_base_url=str(fake.base_url))
        await patch(server, perplexity_api_key=str(fake.api_key))
        resp = await server.client.post(
            "/api/chat/perplexity", json=body("sonar"), headers=server.auth
        )
        assert resp.status_code == 200, resp.text
        assert set(fake.requests[-1].json) == {"model", "messages", "stream"}


async def test_anthropic_gets_system_image_blocks_and_max_tokens(
    make_server: ServerFactory,
) -> None:
    async with FakeAnthropic() as fake:
        server = await make_server(stored_key=None, anthropic_base_url=str(fake.base_url))
        await patch(server, anthropic_api_key=str(fake.api_key))
        resp = await server.client.post(
            "/api/chat/anthropic", json=body("claude-3-haiku-20240307", 1.5), headers=server.auth
        )
        assert resp.status_code == 200, resp.text
        sent = fake.requests[-1]
        assert sent.headers["x-api-key"] == fake.api_key
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert sent.json == {
            "model": "claude-3-haiku-20240307",
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBORw0KGgo=",
                            },
                        },
                    ],
                },
            ],
            "max_tokens": 4096,  # chatbot-ui's table for claude-3-haiku
            "temperature": 1.0,  # clamped to Anthropic's 0..1
            "stream": True,
        }


async def test_anthropic_error_event_mid_stream_aborts(make_server: ServerFactory) -> None:
    import httpx

    async with FakeAnthropic() as fake:
        server = await make_server(stored_key=None, anthropic_base_url=str(fake.base_url))
        await patch(server, anthropic_api_key=str(fake.api_key))
        received: list[bytes] = []

        async def read() -> None:
            async with server.client.stream(
                "POST", "/api/chat/anthropic", json=body("fake-error-mid"), headers=server.auth
            ) as resp:
                async for chunk in resp.aiter_raw():
                    received.append(chunk)

        with pytest.raises(httpx.RemoteProtocolError):
            await read()
        assert received  # the text before the error got through, then the stream was cut


async def test_gemini_gets_history_roles_and_the_new_turn_last(make_server: ServerFactory) -> None:
    async with FakeGemini() as fake:
        server = await make_server(stored_key=None, google_base_url=str(fake.base_url))
        await patch(server, google_gemini_api_key=str(fake.api_key))
        resp = await server.client.post(
            "/api/chat/google", json=body("gemini-2.5-flash"), headers=server.auth
        )
        assert resp.status_code == 200, resp.text
        sent = fake.requests[-1]
        assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        assert sent.query == {"alt": "sse"}
        assert sent.headers["x-goog-api-key"] == fake.api_key
        assert sent.json["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
        assert sent.json["contents"] == [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello."}]},
            {
                "role": "user",
                "parts": [
                    {"text": "What is in this picture?"},
                    {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}},
                ],
            },
        ]
        assert sent.json["generationConfig"]["temperature"] == 0.7


async def test_ollama_gets_ndjson_chat_with_images(make_server: ServerFactory) -> None:
    async with FakeOllama() as fake:
        server = await make_server(stored_key=None, ollama_base_url=str(fake.base_url))
        resp = await server.client.post("/api/chat/ollama", json=body("llava"), headers=server.auth)
        assert resp.status_code == 200, resp.text
        assert resp.text == fake.expected_reply(fake.requests[-1].json["messages"], model="llava")
        sent = fake.requests[-1]
        assert sent.path == "/api/chat"
        assert "authorization" not in sent.headers
        assert sent.json["messages"][-1] == {
            "role": "user",
            "content": "What is in this picture?",
            "images": ["iVBORw0KGgo="],
        }
        assert sent.json["options"] == {"temperature": 0.7}
        assert sent.json["stream"] is True
