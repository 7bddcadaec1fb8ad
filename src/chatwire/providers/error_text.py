"""Pull a readable message out of whatever error body a provider sent.

Providers (Mistral above all, see mistral-wire.md) have used many error shapes over the
years: ``{"message": "..."}``, ``{"detail": "..."}``, ``{"detail": [pydantic errors]}``,
``{"message": {"detail": [...]}}``, a message that is itself a JSON string, and OpenAI's
``{"error": {"message": ...}}``. This reads them all by structure, never by wording.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_MESSAGE_CHARS = 500


def readable_message(body: bytes) -> str | None:
    """The provider's own message in ``body``, or None when it carries none."""
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        text = body.decode("utf-8", "replace").strip()
        # An HTML error page says nothing a person can act on.
        if not text or text.startswith("<"):
            return None
        return _shorten(text)
    found = _from_value(data, depth=0)
    return _shorten(found) if found else None


def _from_value(value: Any, depth: int) -> str | None:
    if depth > 4:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith(("{", "[")):
            try:
                return _from_value(msgspec.json.decode(stripped), depth + 1)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                pass
        return stripped or None
    if isinstance(value, list):
        parts = [p for p in (_validation_item(v) for v in value) if p]
        return "; ".join(parts) or None
    if isinstance(value, dict):
        for field in ("message", "detail", "error"):
            if field in value:
                found = _from_value(value[field], depth + 1)
                if found:
                    return found
    return None


def _validation_item(item: Any) -> str | None:
    """One entry of a pydantic-style ``detail`` list: ``loc: msg``."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return None
    msg = item.get("msg") or item.get("message")
    if not isinstance(msg, str):
        return None
    loc = item.get("loc")
    if isinstance(loc, list) and loc:
        where = ".".join(str(p) for p in loc if p != "body")
        if where:
            return f"{where}: {msg}"
    return msg


def _shorten(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 3] + "..."
