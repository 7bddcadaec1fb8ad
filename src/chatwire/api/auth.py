"""Bearer-token authentication, with a short-lived cache in front of the store.

A token's user is reused for ``CHATWIRE_CACHE_TTL`` seconds, unknown tokens included, so a
flood of bad tokens costs one database read per token per TTL; concurrent lookups of the
same token share one read. Revocation elsewhere takes effect within the TTL. Random tokens
cost at most ``CHATWIRE_AUTH_FAILURES_PER_MINUTE`` reads a minute per client address
(``api.throttle``), and at most ``CHATWIRE_DB_MAX_WAITING`` lookups wait on the database at
once, so they cannot pile up behind a slow one.

A browser signed in to chatwire's own pages (``api.routes.session``) sends no
``Authorization`` header but the session's cookie, looked up through the same kind of cache,
cap and throttle; a request that changes anything must also carry the session's CSRF token
in ``X-CSRF-Token`` (403 without it). Requests with a bearer token never look at cookies.

The operator's routes (``/metrics`` and the API docs) take no user's token: they are open,
or, with ``CHATWIRE_METRICS_TOKEN`` set, need that token (``OperatorToken``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from async_lru import alru_cache
from fastapi import FastAPI
from starlette.requests import cookie_parser
from starlette.types import ASGIApp

from chatwire.api.asgi import Receive, Scope, Send, read_heads, send_error
from chatwire.api.throttle import FailureThrottle
from chatwire.errors import AuthenticationRequired, CSRFRefused, Overloaded, TooManyFailures
from chatwire.store.records import UserRecord
from chatwire.timing import Timing

# Callers kept per cache: past this many distinct tokens (or sessions) in a cache's
# lifetime, the least recently used is read again. A team's every active token fits; tokens
# used in turn by more callers than this would each miss every time.
CACHE_ENTRIES = 50_000

HOW_TO_AUTHENTICATE = (
    "Send the header 'Authorization: Bearer <token>'. "
    "Create a token with 'chatwire users create NAME' (new user) "
    "or 'chatwire tokens create NAME' (existing user)."
)

Lookup = Callable[[str], Coroutine[Any, Any, UserRecord | None]]

SESSION_COOKIE = "chatwire_session"
CSRF_HEADER = "X-CSRF-Token"
_CSRF_KEY = CSRF_HEADER.lower().encode()
# Methods that change nothing: the only ones a cookie alone may make.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session: str) -> str:
    """The session's CSRF token: derived from its secret, so it needs no storage, and it
    tells nothing of the secret itself."""
    return hashlib.sha256(b"chatwire csrf\0" + session.encode()).hexdigest()


def session_cookie(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The session cookie's value among a request's headers, if it sent one."""
    for key, value in headers:
        if key == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE)
            if found:
                return found
    return None


class Authenticator:
    """``max_waiting``: lookups let wait on the store at once (0: no cap), past it a 503;
    ``failures``: the failed tokens allowed per client address (``api.throttle``)."""

    def __init__(
        self,
        lookup: Lookup,
        ttl: float,
        max_waiting: int = 0,
        failures: FailureThrottle | None = None,
        retry_after: int = 1,
        session_lookup: Lookup | None = None,
    ) -> None:
        self._store_lookup = lookup
        self._max_waiting = max_waiting
        self.waiting = 0
        self._failures = failures if failures is not None else FailureThrottle(0)
        self._retry_after = retry_after
        # The cap is inside the cache: cached answers and coalesced lookups wait on nothing.
        limited = self._limited
        self._lookup: Lookup = (
            alru_cache(maxsize=CACHE_ENTRIES, ttl=ttl)(limited) if ttl > 0 else limited
        )
        self._store_session = session_lookup
        sessions = self._limited_session
        self._session: Lookup = (
            alru_cache(maxsize=CACHE_ENTRIES, ttl=ttl)(sessions) if ttl > 0 else sessions
        )

    async def _limited(self, token: str) -> UserRecord | None:
        return await self._waiting(self._store_lookup, token)

    async def _limited_session(self, token: str) -> UserRecord | None:
        if self._store_session is None:
            return None
        return await self._waiting(self._store_session, token)

    async def _waiting(self, lookup: Lookup, token: str) -> UserRecord | None:
        if self._max_waiting and self.waiting >= self._max_waiting:
            raise Overloaded(
                f"chatwire has {self.waiting} token lookups waiting on its database, its "
                "limit (CHATWIRE_DB_MAX_WAITING); try again in a moment.",
                self._retry_after,
            )
        self.waiting += 1
        try:
            return await lookup(token)
        finally:
            self.waiting -= 1

    async def user_for_authorization(self, value: str | None, client: str = "") -> UserRecord:
        """The user of the ``Authorization`` header's token; ``client``: the address the
        request came from, whose failed tokens are counted."""
        if not value:
            raise AuthenticationRequired(f"Authentication required. {HOW_TO_AUTHENTICATE}")
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationRequired(
                f"The Authorization header must use the Bearer scheme. {HOW_TO_AUTHENTICATE}"
            )
        self._check_failures(client)
        user = await self._lookup(token)
        if user is None:
            self._failures.failed(client)
            raise AuthenticationRequired(
                "The bearer token is unknown or has been revoked. "
                "Create a new one with 'chatwire tokens create NAME'."
            )
        return user

    def _check_failures(self, client: str) -> None:
        failures = self._failures
        wait = failures.wait(client)
        if wait:
            raise TooManyFailures(
                f"Too many unknown or revoked bearer tokens or sessions from your address "
                f"({failures.per_minute} a minute, CHATWIRE_AUTH_FAILURES_PER_MINUTE); "
                f"try again in {wait} s.",
                wait,
            )

    async def user_for_browser(
        self, headers: Iterable[tuple[bytes, bytes]], method: str, client: str = ""
    ) -> UserRecord:
        """The user of a request that sent no ``Authorization`` header: its session
        cookie's, with the session's CSRF token required unless ``method`` is safe. Without
        a cookie, the same 401 as a request without a token."""
        session = csrf = None
        for key, value in headers:
            if key == b"cookie" and session is None:
                session = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE) or None
            elif key == _CSRF_KEY:
                csrf = value
        if session is None:
            return await self.user_for_authorization(None, client)
        if method not in SAFE_METHODS and not (
            csrf is not None and hmac.compare_digest(csrf, csrf_token(session).encode())
        ):
            raise CSRFRefused(
                f"This request changes something and came with the session cookie but "
                f"without the session's {CSRF_HEADER} header; reload the page and try again."
            )
        self._check_failures(client)
        user = await self._session(session)
        if user is None:
            self._failures.failed(client)
            raise AuthenticationRequired(
                "Your session has ended or expired: sign in again (open chatwire's page at /)."
            )
        return user

    def forget_all(self) -> None:
        """Forget every token's and session's caller, so the next request of each reads its
        user, role and policies again (after a change to any of them)."""
        for cached in (self._lookup, self._session):
            clear = getattr(cached, "cache_clear", None)
            if clear is not None:
                clear()

    def session_ended(self, session: str) -> None:
        """Forget a session this process signed out, so its cookie stops working at once."""
        invalidate = getattr(self._session, "cache_invalidate", None)
        if invalidate is not None:
            invalidate(session)


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
