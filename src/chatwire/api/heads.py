"""The heads every response of the FastAPI part carries, as the chat routes (which write
straight to ``send``) set them themselves: ``X-Request-ID`` and ``Server-Timing``."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatwire.api.asgi import request_id
from chatwire.timing import Timing


class ResponseHeads:
    """Adds the request id (the client's own when it sent a sane one) and chatwire's own
    time to every response of the routes off the hot path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timing = Timing()
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = (b"x-request-id", request_id(given))

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), rid, timing.header()]
            await send(message)

        await self.app(scope, receive, headed)
