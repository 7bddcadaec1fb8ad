"""Request validation for the fake Mistral upstream, in Mistral's own 422 vocabulary.

Mistral validates request bodies with pydantic behind FastAPI, so its 422 answers carry
pydantic v2 error entries: ``{"type", "loc", "msg", "input"}`` (plus ``ctx`` for some
types). This module produces those entries; ``_mistral_replies`` wraps them in one of the
three body generations.

Locations chosen (pydantic's tagged-union style, where the member tag follows the index):

- unknown top-level field: ``["body", "<field>"]``, type ``extra_forbidden``;
- missing ``model`` / ``messages``: ``["body", "<field>"]``, type ``missing``;
- a message without ``role``: ``["body", "messages", i, "role"]``, type ``missing``;
- a message with an unknown role (``developer``): same location, type ``literal_error``;
- a field a role does not allow (``name`` on a user message):
  ``["body", "messages", i, "<role>", "<field>"]``, type ``extra_forbidden``;
- a missing required ``content`` (system, user, tool): ``["body", "messages", i, "<role>",
  "content"]``, type ``missing``.

Only the types of a few scalars are checked (stream, max_tokens, temperature, top_p,
random_seed, prefix, content); this is a fake, not a re-implementation of Mistral.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

Loc = tuple[str | int, ...]
ErrorEntry = dict[str, Any]

# `n` appears in Mistral's current OpenAPI spec but was rejected for years (the 422 example
# in mistral-wire.md is for `n`), and the chat-route contract forbids sending it: the fake
# stays strict so a client that sends it is caught.
ACCEPTED_FIELDS: Final = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "prediction",
        "parallel_tool_calls",
        "safe_prompt",
        "prompt_mode",
        "reasoning_effort",
        "metadata",
        "guardrails",
        "prompt_cache_key",
    }
)

ROLE_FIELDS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "system": frozenset({"role", "content"}),
        "user": frozenset({"role", "content"}),
        "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
        "tool": frozenset({"role", "content", "tool_call_id", "name"}),
    }
)
_ROLES_WITH_REQUIRED_CONTENT: Final = frozenset({"system", "user", "tool"})
_EXPECTED_ROLES: Final = "'system', 'user', 'assistant' or 'tool'"


def entry(
    kind: str, loc: Loc, msg: str, value: object, ctx: dict[str, Any] | None = None
) -> ErrorEntry:
    """One pydantic-style error entry."""
    result: ErrorEntry = {"type": kind, "loc": list(loc), "msg": msg, "input": value}
    if ctx is not None:
        result["ctx"] = ctx
    return result


def json_error(position: int, reason: str) -> ErrorEntry:
    """The entry FastAPI produces for a body that is not valid JSON."""
    return entry("json_invalid", ("body", position), "JSON decode error", {}, {"error": reason})


def validate_chat_body(body: object) -> list[ErrorEntry]:
    """Every validation error in a chat-completions body, in pydantic's order."""
    if not isinstance(body, dict):
        return [
            entry(
                "model_attributes_type",
                ("body",),
                "Input should be a valid dictionary or object to extract fields from",
                body,
            )
        ]
    errors: list[ErrorEntry] = []
    if "model" not in body:
        errors.append(_missing(("body", "model"), body))
    elif not isinstance(body["model"], str):
        errors.append(entry("string_type", ("body", "model"), _STRING_MSG, body["model"]))
    if "messages" not in body:
        errors.append(_missing(("body", "messages"), body))
    else:
        errors.extend(_validate_messages(body["messages"]))
    errors.extend(_validate_scalars(body))
    errors.extend(
        entry("extra_forbidden", ("body", key), _EXTRA_MSG, value)
        for key, value in body.items()
        if key not in ACCEPTED_FIELDS
    )
    return errors


_EXTRA_MSG: Final = "Extra inputs are not permitted"
_STRING_MSG: Final = "Input should be a valid string"


def _missing(loc: Loc, container: object) -> ErrorEntry:
    return entry("missing", loc, "Field required", container)


def _validate_messages(messages: object) -> list[ErrorEntry]:
    loc: Loc = ("body", "messages")
    if not isinstance(messages, list):
        return [entry("list_type", loc, "Input should be a valid list", messages)]
    if not messages:
        return [
            entry(
                "too_short",
                loc,
                "List should have at least 1 item after validation, not 0",
                messages,
                {"field_type": "List", "min_length": 1, "actual_length": 0},
            )
        ]
    errors: list[ErrorEntry] = []
    for index, message in enumerate(messages):
        errors.extend(_validate_message((*loc, index), message))
    return errors


def _validate_message(loc: Loc, message: object) -> list[ErrorEntry]:
    if not isinstance(message, dict):
        return [entry("dict_type", loc, "Input should be a valid dictionary", message)]
    if "role" not in message:
        return [_missing((*loc, "role"), message)]
    role = message["role"]
    if not isinstance(role, str) or role not in ROLE_FIELDS:
        return [
            entry(
                "literal_error",
                (*loc, "role"),
                f"Input should be {_EXPECTED_ROLES}",
                role,
                {"expected": _EXPECTED_ROLES},
            )
        ]
    tagged: Loc = (*loc, role)
    errors: list[ErrorEntry] = []
    if "content" not in message:
        if role in _ROLES_WITH_REQUIRED_CONTENT:
            errors.append(_missing((*tagged, "content"), message))
    elif not isinstance(message["content"], str | list | None):
        errors.append(entry("string_type", (*tagged, "content"), _STRING_MSG, message["content"]))
    if role == "assistant" and "prefix" in message and not isinstance(message["prefix"], bool):
        errors.append(_bool_error((*tagged, "prefix"), message["prefix"]))
    allowed = ROLE_FIELDS[role]
    errors.extend(
        entry("extra_forbidden", (*tagged, key), _EXTRA_MSG, value)
        for key, value in message.items()
        if key not in allowed
    )
    return errors


def _bool_error(loc: Loc, value: object) -> ErrorEntry:
    return entry("bool_type", loc, "Input should be a valid boolean", value)


def _validate_scalars(body: dict[str, Any]) -> list[ErrorEntry]:
    errors: list[ErrorEntry] = []
    if "stream" in body and not isinstance(body["stream"], bool):
        errors.append(_bool_error(("body", "stream"), body["stream"]))
    for name in ("max_tokens", "random_seed"):
        if body.get(name) is not None:
            errors.extend(_number_error(name, body[name], integer=True, low=0, high=None))
    if body.get("temperature") is not None:
        errors.extend(_number_error("temperature", body["temperature"], low=0, high=1.5))
    if body.get("top_p") is not None:
        errors.extend(_number_error("top_p", body["top_p"], low=0, high=1))
    return errors


def _number_error(
    name: str, value: object, *, low: float, high: float | None, integer: bool = False
) -> list[ErrorEntry]:
    loc: Loc = ("body", name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind, msg = ("int_type", "integer") if integer else ("float_type", "number")
        return [entry(kind, loc, f"Input should be a valid {msg}", value)]
    if integer and isinstance(value, float) and not value.is_integer():
        msg = "Input should be a valid integer, got a number with a fractional part"
        return [entry("int_from_float", loc, msg, value)]
    if value < low:
        msg = f"Input should be greater than or equal to {low}"
        return [entry("greater_than_equal", loc, msg, value, {"ge": low})]
    if high is not None and value > high:
        msg = f"Input should be less than or equal to {high}"
        return [entry("less_than_equal", loc, msg, value, {"le": high})]
    return []
