"""Request validation for the fake Anthropic Messages API, in Anthropic's own words.

Anthropic answers a bad request with one ``invalid_request_error`` whose message names the
field path, pydantic style: ``"max_tokens: Field required"``, ``"temperature: range: 0..1"``,
``"messages.0.role: Input should be 'user' or 'assistant'"``. The role rules have messages of
their own, quoted from captures in public issue threads:

- a ``system`` role: ``messages: Unexpected role "system". The Messages API accepts a
  top-level `system` parameter, not "system" as an input message role.``
- the first message not from the user: ``messages: first message must use the "user" role``
- two turns from one side: ``messages: roles must alternate between "user" and "assistant",
  but found multiple "user" roles in a row``

Checked in this order, the first failure answers: the body is an object; model, max_tokens,
messages are present; no unknown top-level field; the scalars' types and ranges; ``system``;
each message's shape and content blocks; then the role order. Images are checked down to their
bytes: the base64 must decode and start like the declared media type.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

ACCEPTED_FIELDS: Final = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
    }
)
# Blocks other than text and image are accepted as they come: the fake does not use them.
BLOCK_TYPES: Final = ("text", "image", "document", "tool_use", "tool_result", "thinking")
IMAGE_SIGNATURES: Final[Mapping[str, tuple[bytes, ...]]] = MappingProxyType(
    {
        "image/jpeg": (b"\xff\xd8\xff",),
        "image/png": (b"\x89PNG\r\n\x1a\n",),
        "image/gif": (b"GIF87a", b"GIF89a"),
        "image/webp": (b"RIFF",),
    }
)
_MEDIA_TYPES: Final = "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"


def validate_messages_body(body: object) -> str | None:
    """The message of the first problem in a Messages API body, or None when it is valid."""
    if not isinstance(body, dict):
        return "Input should be a valid dictionary or object to extract fields from"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    for name in body:
        if name not in ACCEPTED_FIELDS:
            return f"{name}: Extra inputs are not permitted"
    return (
        _scalar_problem(body)
        or _system_problem(body.get("system"))
        or _messages_problem(body["messages"])
    )


def _scalar_problem(body: dict[str, Any]) -> str | None:
    if not isinstance(body["model"], str):
        return "model: Input should be a valid string"
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return "max_tokens: Input should be a valid integer"
    if max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name}: Input should be a valid number"
        if not 0 <= value <= 1:
            return f"{name}: range: 0..1"
    return None


def _system_problem(system: object) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return "system: Input should be a valid list"
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            return f"system.{index}.type: Input should be 'text'"
        if not isinstance(block.get("text"), str):
            return f"system.{index}.text: Input should be a valid string"
    return None


def _messages_problem(messages: object) -> str | None:
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        problem = _message_problem(index, message, last=index == len(messages) - 1)
        if problem is not None:
            return problem
    return _order_problem([message["role"] for message in messages])


def _message_problem(index: int, message: object, *, last: bool) -> str | None:
    loc = f"messages.{index}"
    if not isinstance(message, dict):
        return f"{loc}: Input should be a valid dictionary or object to extract fields from"
    for name in ("role", "content"):
        if name not in message:
            return f"{loc}.{name}: Field required"
    for name in message:
        if name not in ("role", "content"):
            return f"{loc}.{name}: Extra inputs are not permitted"
    role = message["role"]
    if role == "system":
        return (
            'messages: Unexpected role "system". The Messages API accepts a top-level'
            ' `system` parameter, not "system" as an input message role.'
        )
    if role not in ("user", "assistant"):
        return f"{loc}.role: Input should be 'user' or 'assistant'"
    content = message["content"]
    if not isinstance(content, str | list):
        return f"{loc}.content: Input should be a valid string or a list of content blocks"
    if not content and not (last and role == "assistant"):
        return (
            f"{loc}: all messages must have non-empty content except for the optional"
            " final assistant message"
        )
    if isinstance(content, list):
        for number, block in enumerate(content):
            problem = _block_problem(f"{loc}.content.{number}", block)
            if problem is not None:
                return problem
    return None


def _block_problem(loc: str, block: object) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        allowed = ", ".join(f"'{kind}'" for kind in BLOCK_TYPES)
        return f"{loc}.type: Input should be {allowed}"
    if block["type"] == "text":
        if not isinstance(block.get("text"), str):
            return f"{loc}.text.text: Input should be a valid string"
        if not block["text"]:
            return "messages: text content blocks must be non-empty"
    if block["type"] == "image":
        return _image_problem(f"{loc}.image.source", block.get("source"))
    return None


def _image_problem(loc: str, source: object) -> str | None:
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        return f"{loc}.type: Input should be 'base64' or 'url'"
    if source["type"] == "url":
        if not isinstance(source.get("url"), str):
            return f"{loc}.url.url: Field required"
        return None
    media_type = source.get("media_type")
    if not isinstance(media_type, str) or media_type not in IMAGE_SIGNATURES:
        return f"{loc}.base64.media_type: Input should be {_MEDIA_TYPES}"
    data = source.get("data")
    if not isinstance(data, str):
        return f"{loc}.base64.data: Input should be a valid string"
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"{loc}.base64.data: Invalid base64 data"
    if not decoded.startswith(IMAGE_SIGNATURES[media_type]):
        kind = media_type.removeprefix("image/")
        return (
            f"{loc}.base64.data: The image was specified using the {media_type} media type,"
            f" but does not appear to be a valid {kind} image"
        )
    return None


def _order_problem(roles: list[str]) -> str | None:
    if roles[0] != "user":
        return 'messages: first message must use the "user" role'
    for earlier, later in itertools.pairwise(roles):
        if earlier == later:
            return (
                'messages: roles must alternate between "user" and "assistant",'
                f' but found multiple "{later}" roles in a row'
            )
    return None
