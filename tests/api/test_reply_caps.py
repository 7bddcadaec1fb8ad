"""One chat's reply is capped in bytes (CHATWIRE_MAX_REPLY_BYTES) and in time
(CHATWIRE_MAX_CHAT_SECONDS): an upstream that never ends is cut as a failure mid-stream is,
on both APIs, instead of being relayed for ever."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.fakes.endless import Endless


async def read_into(resp: httpx.Response, pieces: list[bytes]) -> None:
    async for piece in resp.aiter_bytes():
        pieces.append(piece)


V1 = {
    "model": "mistral/mistral-small-latest",
    "messages": [{"role": "user", "content": "Hi"}],
    "stream": True,
}


async def test_a_reply_past_the_byte_cap_is_cut_on_both_apis(
    make_server: ServerFactory, endless: Endless
) -> None:
    server = await make_server(mistral_base_url=endless.base_url, max_reply_bytes=1_000_000)
    async with asyncio.timeout(20):
        pieces: list[bytes] = []
        async with server.client.stream(
            "POST", "/api/chat/mistral", json=server.chat_body(), headers=server.auth
        ) as resp:
            assert resp.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):  # cut without a clean end
                await read_into(resp, pieces)
        assert 0 < sum(map(len, pieces)) <= 1_000_000

        async with server.client.stream(
            "POST", "/v1/chat/completions", json=V1, headers=server.auth
        ) as resp:
            lines = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] != "data: [DONE]"
    error = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert "CHATWIRE_MAX_REPLY_BYTES" in error["message"]


async def test_a_reply_past_the_time_cap_is_cut(
    make_server: ServerFactory, endless: Endless
) -> None:
    endless.interval = 0.05
    server = await make_server(mistral_base_url=endless.base_url, max_chat_seconds=1)
    started = time.perf_counter()
    async with (
        asyncio.timeout(20),
        server.client.stream("POST", "/v1/chat/completions", json=V1, headers=server.auth) as resp,
    ):
        lines = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
    took = time.perf_counter() - started
    error = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert "CHATWIRE_MAX_CHAT_SECONDS" in error["message"]
    assert 1.0 <= took < 3.0
