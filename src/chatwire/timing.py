"""Server-Timing: what chatwire itself costs on a request, next to what the upstream costs."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Timing:
    """Server-Timing: chatwire's own time before calling the upstream, and the upstream's."""

    __slots__ = ("answered", "arrived", "sent")

    def __init__(self) -> None:
        self.arrived = time.perf_counter()
        self.sent = self.answered = 0.0

    def header(self) -> tuple[bytes, bytes]:
        parts = []
        if self.sent:
            parts.append(f"gateway;dur={(self.sent - self.arrived) * 1000:.3f}")
        else:
            parts.append(f"gateway;dur={(time.perf_counter() - self.arrived) * 1000:.3f}")
        if self.answered:
            parts.append(f"upstream;dur={(self.answered - self.sent) * 1000:.3f}")
        return (b"server-timing", ", ".join(parts).encode())


class ServerTimingMiddleware:
    """Adds chatwire's own time to the responses of the routes off the hot path (the chat
    routes set the header themselves, with the upstream's time next to it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timing = Timing()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), timing.header()]
            await send(message)

        await self.app(scope, receive, timed)
