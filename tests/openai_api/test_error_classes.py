"""Every status /v1 answers with reaches the openai SDK as the exception class its retry and
error handling branch on: 403, 413, 422, 502, 503 and 504 here (400, 401, 404, 429 and 500
are in test_chat_completions.py), with OpenAI's error shape and Retry-After where it applies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FAULT_STALL, FakeMistral
from tests.scripted import ScriptedUpstream

MESSAGES: list[Any] = [{"role": "user", "content": "Hi"}]
FORBIDDEN = b'{"message":"Your organization may not use this model"}'


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


@pytest.fixture
async def forbidding() -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream(
        [
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(FORBIDDEN)).encode()
            + b"\r\n\r\n"
            + FORBIDDEN
        ]
    )
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


async def test_403_is_permission_denied(
    make_server: ServerFactory, forbidding: ScriptedUpstream
) -> None:
    server = await make_server(mistral_base_url=forbidding.base_url)
    async with sdk(server) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
    assert caught.value.status_code == 403
    assert "may not use this model" in caught.value.message


async def test_a_field_the_provider_rejects_is_its_422(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            await client.chat.completions.create(
                model="mistral-small-latest", messages=MESSAGES, extra_body={"colour": "blue"}
            )
    assert "colour" in caught.value.message
    assert fake.requests[-1].json["colour"] == "blue"  # chatwire passed it on as sent


async def test_413_for_a_body_over_the_limit(make_server: ServerFactory) -> None:
    server = await make_server(max_body_bytes=2048)
    async with sdk(server) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="mistral-small-latest", messages=[{"role": "user", "content": "x" * 4096}]
            )
    assert caught.value.status_code == 413
    assert "CHATWIRE_MAX_BODY_BYTES" in caught.value.message


async def test_502_when_the_provider_cannot_be_reached(make_server: ServerFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = await make_server(mistral_base_url=f"http://127.0.0.1:{port}/v1")
    async with sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "Could not connect to Mistral" in caught.value.message


async def test_504_when_the_provider_does_not_answer(make_server: ServerFactory) -> None:
    server = await make_server(first_byte_timeout=0.3)
    async with sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model=f"mistral/{FAULT_STALL}", messages=MESSAGES)
    assert caught.value.status_code == 504
    assert "CHATWIRE_FIRST_BYTE_TIMEOUT" in caught.value.message


async def test_503_with_retry_after_when_the_process_is_full(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_streams=1)
    async with sdk(server) as first, sdk(server) as second:
        # A chat the fake never answers holds the process's one place.
        held = asyncio.create_task(
            first.chat.completions.create(model=f"mistral/{FAULT_STALL}", messages=MESSAGES)
        )
        for _ in range(500):
            if fake.active_requests:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(openai.InternalServerError) as caught:
            await second.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body == {
        "message": "chatwire is at its limit of 1 chats at once (CHATWIRE_MAX_STREAMS); "
        "try again in a moment.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
