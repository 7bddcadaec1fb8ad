"""One chat's reply is capped in bytes (CHATWIRE_MAX_REPLY_BYTES) and in time
(CHATWIRE_MAX_CHAT_SECONDS): an upstream that never ends is cut as a failure mid-stream is,
on both APIs, instead of being relayed for ever."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from tests.conftest import ServerFactory

DELTA = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":'
    b'[{"index":0,"delta":{"content":"' + b"x" * 900 + b'"},"finish_reason":null}]}\n\n'
)


class Endless:
    """An OpenAI-compatible upstream whose reply never ends: a delta every ``interval`` s."""

    def __init__(self) -> None:
        self.interval = 0.0
        self.sent = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            while True:
                await resp.write(DELTA * 16)
                self.sent += len(DELTA) * 16
                await asyncio.sleep(self.interval)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp


@pytest.fixture
async def endless() -> AsyncIterator[Endless]:
    upstream = Endless()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


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
