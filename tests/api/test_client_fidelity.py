"""What real clients do that the first version got wrong, each through real sockets:

- chatbot-ui's browser sends Gemini-shaped messages to /api/chat/google
  (``adaptMessagesForGoogleGemini``: role "user" | "model", ``parts``);
- the Mistral SDKs read /v1/models entries by their ``type`` and want ``capabilities``;
- a local Ollama's models are listed (its /api/tags), and nothing breaks when it is down;
- OpenAI's Node SDK stream helpers want the role in every family's first delta.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from mistralai.client import Mistral, models

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_ollama import FakeOllama

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n fake png").decode()


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    fake = FakeGemini()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def ollama() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as fake:
        yield fake


async def test_the_google_route_takes_chatbot_uis_gemini_shaped_messages(
    make_server: ServerFactory, gemini: FakeGemini
) -> None:
    server = await make_server(
        stored_key=None,
        google_base_url=gemini.base_url,
        google_gemini_api_key=gemini.api_key,
    )
    # What adaptMessagesForGoogleGemini makes of a system prompt, a first turn with an
    # image, the model's answer and a second turn.
    body: dict[str, Any] = {
        "chatSettings": {"model": "gemini-2.5-flash", "temperature": 0.5},
        "messages": [
            {"role": "user", "parts": [{"text": "You are helpful."}]},
            {
                "role": "user",
                "parts": [
                    {"text": "What is in this picture?"},
                    {"inlineData": {"mimeType": "image/png", "data": PIXEL}},
                ],
            },
            {"role": "model", "parts": [{"text": "A tiny picture."}]},
            {"role": "user", "parts": [{"text": "Describe it again"}]},
        ],
    }
    resp = await server.client.post("/api/chat/google", json=body, headers=server.auth)
    assert resp.status_code == 200, resp.text
    sent = gemini.requests[-1].json
    assert [turn["role"] for turn in sent["contents"]] == ["user", "user", "model", "user"]
    assert sent["contents"][1]["parts"] == [
        {"text": "What is in this picture?"},
        {"inline_data": {"mime_type": "image/png", "data": PIXEL}},
    ]
    assert sent["contents"][2]["parts"] == [{"text": "A tiny picture."}]
    assert resp.text == gemini.expected_reply(sent["contents"], model="gemini-2.5-flash")


async def test_mistral_sdks_read_v1_models_as_base_models(server: Running) -> None:
    async with Mistral(api_key=server.token, server_url=server.url) as client:
        listed = await client.models.list_async()
    assert listed.data
    for card in listed.data:
        assert isinstance(card, models.BaseModelCard), card
        # Embedding models are listed too, as models that do not chat.
        assert card.capabilities.completion_chat == (not card.id.endswith("-embed")), card.id
    ids = [card.id for card in listed.data if isinstance(card, models.BaseModelCard)]
    assert "mistral/mistral-small-latest" in ids
    assert "mistral/mistral-embed" in ids


async def test_a_local_ollamas_models_are_listed(
    make_server: ServerFactory, ollama: FakeOllama
) -> None:
    server = await make_server(stored_key=None, ollama_base_url=ollama.base_url)
    listed = (await server.client.get("/api/models", headers=server.auth)).json()
    pulled = list(ollama.models)
    assert [m["modelId"] for m in listed["ollama"]] == pulled
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=server.token, max_retries=0
    ) as client:
        ids = [model.id async for model in client.models.list()]
        assert {f"ollama/{name}" for name in pulled} <= set(ids)
        # And the listed name is one that chats.
        answer = await client.chat.completions.create(
            model=f"ollama/{pulled[0]}", messages=[{"role": "user", "content": "Lyon"}]
        )
    assert answer.choices[0].message.content
    # Asked once for both lists: the answer is reused for a while.
    assert sum(r.path == "/api/tags" for r in ollama.requests) == 1


async def test_no_ollama_running_lists_none_of_its_models_quickly(
    make_server: ServerFactory,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = await make_server(ollama_base_url=f"http://127.0.0.1:{port}")
    began = time.monotonic()
    resp = await server.client.get("/api/models", headers=server.auth)
    assert resp.status_code == 200
    assert "ollama" not in resp.json()
    assert "mistral" in resp.json()
    # A refused port answers at once; the discovery's own bound is 1 s, the upstream
    # policy's connect timeout 10 s. 2 s was once too little on a loaded CI machine.
    assert time.monotonic() - began < 5.0


async def test_ollamas_first_streamed_delta_says_the_role(
    make_server: ServerFactory, ollama: FakeOllama
) -> None:
    server = await make_server(stored_key=None, ollama_base_url=ollama.base_url)
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=server.token, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="ollama/llama3.2",
            messages=[{"role": "user", "content": "Lyon"}],
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
