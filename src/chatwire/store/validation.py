"""Checks on what the store is asked to keep; messages name the field, never the value."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import urlsplit

from chatwire.store.models import USER_NAME_LENGTH
from chatwire.store.records import FIELD_NAME_LENGTH, MAX_FIELD_LENGTH, CredentialField

# Control, format, surrogate and line/paragraph separator characters.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Names travel as JSON keys, Python attributes (pydantic) and command-line words.
_FIELD_NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{FIELD_NAME_LENGTH - 1}}}")


def has_forbidden(text: str) -> bool:
    return any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text)


def validate_user_name(name: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= USER_NAME_LENGTH:
        raise ValueError(f"a user name must be 1 to {USER_NAME_LENGTH} characters")
    if has_forbidden(name):
        raise ValueError("a user name must not contain control characters")
    if name != name.strip():
        raise ValueError("a user name must not start or end with whitespace")
    return name


def text_value(name: str, value: object, limit: int = MAX_FIELD_LENGTH) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    # Keys, endpoints and ids travel in HTTP headers and URLs: no line breaks or controls.
    if name != "description" and any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError(f"{name} must not contain control characters")
    return value


def check_base_url(text: str, name: str = "base_url") -> None:
    """A plain API base: the route's own path is appended, so nothing may follow it."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"{name} must not carry a query or a fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{name} must not carry credentials")


def credential_value(name: str, field: CredentialField, value: object) -> str:
    """A value to store for the credential field ``name``, checked."""
    text = text_value(name, value)
    if field.url:
        check_base_url(text, name)
    return text


def check_field_names(fields: Mapping[str, CredentialField], reserved: frozenset[str]) -> None:
    """A declaration error, found when the store is built rather than on some user's update."""
    for name, field in fields.items():
        if not isinstance(field, CredentialField):
            raise TypeError(f"credential field {name!r}: expected a CredentialField")
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(
                f"credential field {name[:FIELD_NAME_LENGTH]!r}: a name is lowercase letters, "
                f"digits and '_', starting with a letter, at most {FIELD_NAME_LENGTH} characters"
            )
        if name in reserved:
            raise ValueError(f"credential field {name!r} is a profile setting's name")
