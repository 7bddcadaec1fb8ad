"""Bearer-token authentication, with a short-lived cache in front of the store.

A token's user is reused for ``CHATWIRE_CACHE_TTL`` seconds, unknown tokens included, so a
flood of bad tokens costs one database read per token per TTL; concurrent lookups of the
same token share one read. Revocation elsewhere takes effect within the TTL.

The operator's routes (``/metrics`` and the API docs) take no user's token: they are open,
or, with ``CHATWIRE_METRICS_TOKEN`` set, need that token (``OperatorToken``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from async_lru import alru_cache
from fastapi import FastAPI
from starlette.types import ASGIApp

from chatwire.api.asgi import Receive, Scope, Send, read_heads, send_error
from chatwire.errors import AuthenticationRequired
from chatwire.store.records import UserRecord
from chatwire.timing import Timing

HOW_TO_AUTHENTICATE = (
    "Send the header 'Authorization: Bearer <token>'. "
    "Create a token with 'chatwire users create NAME' (new user) "
    "or 'chatwire tokens create NAME' (existing user)."
)

Lookup = Callable[[str], Coroutine[Any, Any, UserRecord | None]]


class Authenticator:
    def __init__(self, lookup: Lookup, ttl: float) -> None:
        self._lookup: Lookup = alru_cache(maxsize=10_000, ttl=ttl)(lookup) if ttl > 0 else lookup

    async def user_for_authorization(self, value: str | None) -> UserRecord:
        if not value:
            raise AuthenticationRequired(f"Authentication required. {HOW_TO_AUTHENTICATE}")
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationRequired(
                f"The Authorization header must use the Bearer scheme. {HOW_TO_AUTHENTICATE}"
            )
        user = await self._lookup(token)
        if user is None:
            raise AuthenticationRequired(
                "The bearer token is unknown or has been revoked. "
                "Create a new one with 'chatwire tokens create NAME'."
            )
        return user


class OperatorToken:
    """``CHATWIRE_METRICS_TOKEN`` in front of the operator's routes: a bearer token of the
    operator's own, so the one in a scraper's configuration cannot chat, spend a user's
    provider keys or read a profile, and no user's token can read the process's figures.
    Compared in constant time."""

    def __init__(self, app: ASGIApp, token: str, paths: frozenset[str]) -> None:
        self.app = app
        self._token = token.encode()
        self._paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self._paths:
            await self.app(scope, receive, send)
            return
        heads = read_heads(scope)
        scheme, _, token = (heads.authorization or b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._token):
            await self.app(scope, receive, send)
            return
        refused = AuthenticationRequired(
            f"{scope['path']} needs the operator's token: send the header "
            "'Authorization: Bearer <CHATWIRE_METRICS_TOKEN>'."
        )
        await send_error(send, refused, heads.request_id, Timing())


def guard_operator_routes(app: FastAPI, token: str) -> None:
    """Put ``token`` in front of /metrics and the API docs (call after the other
    middleware: the guard answers before them, with heads of its own)."""
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    paths = frozenset(["/metrics", *(path for path in docs if path)])
    app.add_middleware(OperatorToken, token=token, paths=paths)
