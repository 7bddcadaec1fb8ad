"""Request bodies of the routes off the hot path: read only once their sender is known, to
a size that fits the route, within ``CHATWIRE_BODY_TIMEOUT``.

FastAPI reads a route's whole body before it runs the route's dependencies, the token's
check among them: a client without a token could have any size of body read and held
(measured: 64 MiB sent to ``PATCH /api/profile`` grew the process by 180 MiB before its
401), and for as long as it cared to trickle it. So ``BodyGuard`` stands in front of the
routes: a request that brings a body is authenticated first (401 at once, the body unread),
refused with a 413 when it declares more than its route takes, then read here, counted as it
arrives (413 past the limit, 408 past the time), and handed to the route whole. A refusal
closes the connection, so the rest of the body is never read. The chat routes do the same
in their pipeline (``read_body``), with ``CHATWIRE_MAX_BODY_BYTES``.
"""

from __future__ import annotations

from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatwire.api.asgi import ClientGone, closing, read_body, send_json
from chatwire.api.openai_errors import openai_error
from chatwire.errors import ChatwireError
from chatwire.store.records import FIELD_NAME_LENGTH, MAX_FIELD_LENGTH

# A custom model's text fields hold 4,100 characters at most: 16 KiB leaves room for
# non-ASCII ones, in UTF-8 or escaped.
CUSTOM_MODEL_BODY = 16 * 1024
# An admin request: a policy's 100 patterns of 200 characters at most, escaped or not.
ADMIN_BODY = 32 * 1024
# What a route that takes no body may still be sent (an empty JSON object, say).
NO_BODY = 1024
# Where the request's user is left for the routes (``deps.current_user``), once known.
USER_KEY = "chatwire.user"


def profile_body_limit(fields: int) -> int:
    """A profile update that sets every one of ``fields`` to its longest value, with room
    for the JSON around them (about 22 KiB with the shipped providers)."""
    return 1024 + fields * (FIELD_NAME_LENGTH + MAX_FIELD_LENGTH + 8)


class BodyGuard:
    """In front of the FastAPI routes; ``open_paths`` need no token (/healthz, /metrics,
    the docs: none of them takes a body)."""

    def __init__(
        self,
        app: ASGIApp,
        state: State,
        open_paths: frozenset[str],
        profile_limit: int,
        timeout: float,
        chats_limit: int = NO_BODY,
    ) -> None:
        self.app = app
        self._state = state
        self._open = open_paths
        self._profile_limit = profile_limit
        self._chats_limit = chats_limit
        self._timeout = timeout

    def limit(self, path: str) -> int:
        if path == "/api/profile":
            return self._profile_limit
        if path == "/api/custom-models" or path.startswith("/api/custom-models/"):
            return CUSTOM_MODEL_BODY
        if path == "/api/chats" or path.startswith("/api/chats/"):
            return self._chats_limit
        if path.startswith("/api/admin/"):
            return ADMIN_BODY
        return NO_BODY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = length = None
        chunked = False
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = value
            elif key == b"transfer-encoding":
                chunked = True
        if not chunked and (length is None or length == b"0"):
            await self.app(scope, receive, send)  # no body to guard
            return
        path: str = scope["path"]
        try:
            if path not in self._open:
                auth = self._state.services.auth
                if authorization is not None:
                    scope[USER_KEY] = await auth.user_for_authorization(
                        authorization.decode("latin-1")
                    )
                else:  # chatwire's own pages: the session cookie and its CSRF token
                    client = scope.get("client")
                    scope[USER_KEY] = await auth.user_for_browser(
                        scope["headers"], scope["method"], client[0] if client else ""
                    )
            limit = self.limit(path)
            body = await read_body(
                receive, limit, length, _uncounted, self._timeout, f"the most {path} takes"
            )
        except ClientGone:
            return
        except ChatwireError as error:
            await _refuse(closing(send), path, error)
            return
        await self.app(scope, _replay(body, receive), send)


def _uncounted(size: int) -> None:
    """These bodies are a few KiB at most: the chats' body budget does not count them."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for a route, given the body already read: it, then what comes after."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(send: Send, path: str, error: ChatwireError) -> None:
    """The error in the shape of the API it came to, as the app's own handlers render it."""
    shape = openai_error(error) if path.startswith("/v1/") else {"message": error.message}
    await send_json(send, error.status, shape, error.headers())
