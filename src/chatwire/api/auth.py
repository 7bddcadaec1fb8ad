"""Bearer-token authentication, with a short-lived cache in front of the store.

A token's user is reused for ``CHATWIRE_CACHE_TTL`` seconds, unknown tokens included, so a
flood of bad tokens costs one database read per token per TTL; concurrent lookups of the
same token share one read. Revocation elsewhere takes effect within the TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from async_lru import alru_cache

from chatwire.errors import AuthenticationRequired
from chatwire.store.records import UserRecord

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
