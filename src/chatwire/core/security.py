"""Bearer tokens and how secrets are shown."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "cw_"  # noqa: S105 (a prefix, not a secret)


def new_token() -> str:
    """A random bearer token; only its hash is ever stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def mask_secret(value: str | None) -> str | None:
    """What a stored key looks like when read back: never the whole key."""
    if not value:
        return None
    if len(value) < 12:
        return "****"
    if len(value) < 24:
        return f"****{value[-4:]}"
    return f"{value[:3]}...{value[-4:]}"
