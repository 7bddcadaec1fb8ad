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
random_seed, prefix, content), and the shape of what tool calling needs: ``tools`` (a list of
``{"function": {"name": ...}}``), ``tool_choice`` (auto, none, any, required or a named
function) and an assistant message's ``tool_calls`` (each with ``function.name`` and
``function.arguments``, a string or an object). This is a fake, not a re-implementation of
Mistral.

``serving_problem`` makes the checks Mistral runs on the conversation itself, after the
body is valid (mistral-common's ``MistralRequestValidatorV3`` in serving mode), each a 400
with the message and type Mistral answers with (quoted in public issue threads, 2024-2026):

- a tool message after anything but an assistant or tool message, or anything but an
  assistant or tool message after a tool message: ``Unexpected role 'user' after role
  'tool'``, type ``invalid_request_message_order``, code "3230";
- not one tool message per call of the assistant message before them: ``Not the same number
  of function calls and responses``, ``invalid_request_error``;
- a tool call without an id (or the SDK's placeholder ``"null"``): ``Tool call id has to be
  defined in serving mode.``; a tool message without ``tool_call_id``: ``Tool call id has to
  be defined.``; both ``invalid_request_error``;
- an id that is not 9 letters and digits: ``Tool call id was call_1 but must be a-z, A-Z, 0-9,
  with a length of 9.``, type ``invalid_function_call``, code "3280", ``raw_status_code``.

Mistral's other role-order rules (a system message after an assistant one...) are not
modelled.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
    errors.extend(_validate_tools(body))
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
    if role == "assistant" and message.get("tool_calls") is not None:
        errors.extend(_validate_tool_calls((*tagged, "tool_calls"), message["tool_calls"]))
    for key in ("tool_call_id", "name"):
        if role == "tool" and message.get(key) is not None and not isinstance(message[key], str):
            errors.append(entry("string_type", (*tagged, key), _STRING_MSG, message[key]))
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


_TOOL_CHOICES: Final = ("auto", "none", "any", "required")
_TOOL_CHOICE_MSG: Final = "Input should be 'auto', 'none', 'any' or 'required'"


def _validate_tools(body: dict[str, Any]) -> list[ErrorEntry]:
    errors: list[ErrorEntry] = []
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            errors.append(
                entry("list_type", ("body", "tools"), "Input should be a valid list", tools)
            )
        else:
            for index, tool in enumerate(tools):
                errors.extend(_validate_function(("body", "tools", index), tool, "parameters"))
    choice = body.get("tool_choice")
    if choice is not None and choice not in _TOOL_CHOICES:
        if isinstance(choice, dict):
            errors.extend(_validate_function(("body", "tool_choice"), choice, None))
        else:
            ctx = {"expected": "'auto', 'none', 'any' or 'required'"}
            errors.append(entry("enum", ("body", "tool_choice"), _TOOL_CHOICE_MSG, choice, ctx))
    return errors


def _validate_tool_calls(loc: Loc, tool_calls: object) -> list[ErrorEntry]:
    if not isinstance(tool_calls, list):
        return [entry("list_type", loc, "Input should be a valid list", tool_calls)]
    errors: list[ErrorEntry] = []
    for index, call in enumerate(tool_calls):
        errors.extend(_validate_function((*loc, index), call, "arguments"))
        if isinstance(call, dict) and "id" in call and not isinstance(call["id"], str):
            errors.append(entry("string_type", (*loc, index, "id"), _STRING_MSG, call["id"]))
    return errors


def _validate_function(loc: Loc, item: object, detail: str | None) -> list[ErrorEntry]:
    """``{"function": {"name": str, <detail>: ...}}``: a tool, a tool call or a named choice.

    A tool call's ``arguments`` is required (a string or an object); a tool's ``parameters``
    is not checked beyond being an object when given.
    """
    if not isinstance(item, dict):
        return [entry("model_type", loc, _OBJECT_MSG, item)]
    if "function" not in item:
        return [_missing((*loc, "function"), item)]
    function = item["function"]
    if not isinstance(function, dict):
        return [entry("model_type", (*loc, "function"), _OBJECT_MSG, function)]
    errors: list[ErrorEntry] = []
    if "name" not in function:
        errors.append(_missing((*loc, "function", "name"), function))
    elif not isinstance(function["name"], str):
        errors.append(
            entry("string_type", (*loc, "function", "name"), _STRING_MSG, function["name"])
        )
    if detail == "arguments":
        if "arguments" not in function:
            errors.append(_missing((*loc, "function", "arguments"), function))
        elif not isinstance(function["arguments"], str | dict):
            value = function["arguments"]
            errors.append(entry("string_type", (*loc, "function", "arguments"), _STRING_MSG, value))
    elif detail == "parameters" and not isinstance(function.get("parameters", {}), dict):
        value = function["parameters"]
        errors.append(entry("dict_type", (*loc, "function", "parameters"), _DICT_MSG, value))
    return errors


_OBJECT_MSG: Final = "Input should be a valid dictionary or instance of the model"
_DICT_MSG: Final = "Input should be a valid dictionary"
_TOOL_CALL_ID: Final = re.compile(r"[a-zA-Z0-9]{9}")


@dataclass(frozen=True, slots=True)
class ServingProblem:
    """One of Mistral's 400s about the conversation: message, type, code."""

    message: str
    kind: str = "invalid_request_error"
    code: str | None = None
    raw_status_code: bool = False


def serving_problem(messages: list[dict[str, Any]]) -> ServingProblem | None:
    """The first tool-related problem Mistral finds in a valid body's messages, or None.

    Order as mistral-common's: role order, then calls against responses, then each
    message's ids. The last-role rule is checked before this, by the fake itself.
    """
    for before, after in itertools.pairwise(messages):
        first, then = before["role"], after["role"]
        if (then == "tool" and first not in ("assistant", "tool")) or (
            first == "tool" and then not in ("assistant", "tool")
        ):
            unexpected = f"Unexpected role '{then}' after role '{first}'"
            return ServingProblem(unexpected, "invalid_request_message_order", "3230")
    if not _calls_match_responses(messages):
        return ServingProblem("Not the same number of function calls and responses")
    for message in messages:
        if message["role"] == "assistant":
            for call in message.get("tool_calls") or ():
                problem = _call_id_problem(
                    call.get("id", "null"), "Tool call id has to be defined in serving mode."
                )
                if problem is not None:
                    return problem
        elif message["role"] == "tool":
            problem = _call_id_problem(
                message.get("tool_call_id"), "Tool call id has to be defined."
            )
            if problem is not None:
                return problem
    return None


def _calls_match_responses(messages: list[dict[str, Any]]) -> bool:
    """Each assistant message's calls answered by as many tool messages before the next one.

    As mistral-common counts it, from the second message on.
    """
    expected = 0
    for message in messages[1:]:
        if message["role"] == "tool":
            expected -= 1
        elif message["role"] == "assistant":
            if expected != 0:
                return False
            calls = message.get("tool_calls")
            expected = len(calls) if calls is not None else 0
    return expected == 0


def _call_id_problem(call_id: object, undefined: str) -> ServingProblem | None:
    if call_id is None or call_id == "null":
        return ServingProblem(undefined)
    if isinstance(call_id, str) and _TOOL_CALL_ID.fullmatch(call_id):
        return None
    invalid = f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9."
    return ServingProblem(invalid, "invalid_function_call", "3280", raw_status_code=True)
