"""An OpenAI-compatible upstream whose reply never ends, as fast as it can be sent or a delta
every ``interval`` s: for the caps on a reply and on what a stream may hold."""

from __future__ import annotations

import asyncio

from aiohttp import web

DELTA = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":'
    b'[{"index":0,"delta":{"content":"' + b"x" * 900 + b'"},"finish_reason":null}]}\n\n'
)


class Endless:
    """An OpenAI-compatible upstream whose reply never ends: a delta every ``interval`` s."""

    def __init__(self) -> None:
        self.interval = 0.0
        self.sent = 0
        self.requests = 0  # replies begun
        self._begun = asyncio.Condition()
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

    async def begun(self, count: int, within: float) -> None:
        """Wait until ``count`` replies have begun in all."""
        async with asyncio.timeout(within), self._begun:
            await self._begun.wait_for(lambda: self.requests >= count)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async with self._begun:
            self.requests += 1
            self._begun.notify_all()
        try:
            while True:
                await resp.write(DELTA * 16)
                self.sent += len(DELTA) * 16
                await asyncio.sleep(self.interval)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp
