"""Request checks of the fake Ollama server, in the words Ollama answers with.

Ollama decodes a chat body into Go structs with ``encoding/json``, so a value of the wrong type
is a 400 ``json: cannot unmarshal <kind> into Go struct field ChatRequest.<path> of type
<type>`` (the path has no list indexes; the first problem found answers). Unknown fields are
ignored, as Go ignores them: ``tool_choice`` and ``tool_call_id`` mean nothing to Ollama.

For tool calling this covers the shapes Ollama decodes: ``tools`` (a list of objects whose
``function`` is an object with a string ``name``), an assistant message's ``tool_calls``
(each ``{"function": {"name": <string>, "arguments": <object>}}``: arguments given as JSON
text, as OpenAI sends them, are refused) and a tool message's ``tool_name`` (a string).

Ollama does not check the order of tool turns: a tool result needs no earlier call, and one
``tool_name`` may answer any call (it is only shown to the model). What it does refuse is
``tools`` for a model whose template cannot take them: 400 ``registry.ollama.ai/library/
<model:tag> does not support tools`` (``tools_refusal``); of the fake's models, ``gemma3`` and
``llava`` are such models, as in Ollama's library.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

_GO_TYPES: Final[Mapping[type, str]] = MappingProxyType(
    {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}
)
_FIELD_TYPES: Final[Mapping[str, tuple[type, str]]] = MappingProxyType(
    {
        "model": (str, "string"),
        "messages": (list, "[]api.Message"),
        "stream": (bool, "bool"),
        "options": (dict, "map[string]interface {}"),
        "keep_alive": (str, "*api.Duration"),
        "tools": (list, "api.Tools"),
    }
)
_MESSAGE_TYPES: Final[Mapping[str, tuple[type, str]]] = MappingProxyType(
    {
        "role": (str, "string"),
        "content": (str, "string"),
        "images": (list, "[]api.ImageData"),
        "tool_calls": (list, "[]api.ToolCall"),
        "tool_name": (str, "string"),
    }
)
# Families in Ollama's library whose templates take no tools.
NO_TOOLS_FAMILIES: Final = frozenset({"gemma3", "llava"})


def decode_problem(raw: bytes, problem: ValueError) -> str:
    """``encoding/json``'s message for a body that is not JSON."""
    if not raw.strip():
        return "missing request body"
    position = getattr(problem, "pos", 0)
    if position >= len(raw):
        return "unexpected EOF"
    char = raw[position : position + 1].decode(errors="replace")
    if str(problem).startswith("Expecting property name"):
        return f"invalid character '{char}' looking for beginning of object key string"
    return f"invalid character '{char}' looking for beginning of value"


def type_problem(body: object) -> str | None:
    """The first ``cannot unmarshal`` error decoding a ``ChatRequest``, or None."""
    if not isinstance(body, dict):
        return f"json: cannot unmarshal {_go_type(body)} into Go value of type api.ChatRequest"
    for name, (expected, go_type) in _FIELD_TYPES.items():
        problem = _mismatch(body.get(name), expected, f"ChatRequest.{name}", go_type)
        if problem is not None:
            return problem
    for tool in body.get("tools") or []:
        problem = _tool_problem(tool)
        if problem is not None:
            return problem
    for message in body.get("messages") or []:
        problem = _message_problem(message)
        if problem is not None:
            return problem
    return None


def tools_refusal(model: str, body: Mapping[str, Any]) -> str | None:
    """Ollama's 400 for tools sent to a model that cannot take them, or None."""
    if not body.get("tools"):
        return None
    reference = model if ":" in model else f"{model}:latest"
    if reference.split(":")[0] not in NO_TOOLS_FAMILIES:
        return None
    return f"registry.ollama.ai/library/{reference} does not support tools"


def _message_problem(message: object) -> str | None:
    if not isinstance(message, dict):
        return _mismatch(message, dict, "ChatRequest.messages", "api.Message")
    for name, (expected, go_type) in _MESSAGE_TYPES.items():
        where = f"ChatRequest.messages.{name}"
        problem = _mismatch(message.get(name), expected, where, go_type)
        if problem is not None:
            return problem
    for image in message.get("images") or []:
        problem = _image_problem(image)
        if problem is not None:
            return problem
    for call in message.get("tool_calls") or []:
        problem = _call_problem(call)
        if problem is not None:
            return problem
    return None


def _tool_problem(tool: object) -> str | None:
    where = "ChatRequest.tools"
    if not isinstance(tool, dict):
        return _mismatch(tool, dict, where, "api.Tool")
    problem = _mismatch(tool.get("type"), str, f"{where}.type", "string")
    if problem is not None:
        return problem
    return _function_problem(tool.get("function"), f"{where}.function", "api.ToolFunction")


def _call_problem(call: object) -> str | None:
    where = "ChatRequest.messages.tool_calls"
    if not isinstance(call, dict):
        return _mismatch(call, dict, where, "api.ToolCall")
    function = call.get("function")
    problem = _function_problem(function, f"{where}.function", "api.ToolCallFunction")
    if problem is not None or not isinstance(function, dict):
        return problem
    where = f"{where}.function.arguments"
    return _mismatch(function.get("arguments"), dict, where, "api.ToolCallFunctionArguments")


def _function_problem(function: object, where: str, go_type: str) -> str | None:
    problem = _mismatch(function, dict, where, go_type)
    if problem is not None or not isinstance(function, dict):
        return problem
    return _mismatch(function.get("name"), str, f"{where}.name", "string")


def _go_type(value: object) -> str:
    return _GO_TYPES.get(type(value), "value")


def _mismatch(value: object, expected: type, where: str, go_type: str) -> str | None:
    """Go leaves a field at its zero value for null; a bool is never a number or a string."""
    if value is None:
        return None
    if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return None
    kind = _go_type(value)
    return f"json: cannot unmarshal {kind} into Go struct field {where} of type {go_type}"


def _image_problem(image: object) -> str | None:
    if not isinstance(image, str):
        where = "ChatRequest.messages.images"
        return (
            f"json: cannot unmarshal {_go_type(image)} into Go struct field {where} of type []uint8"
        )
    try:
        base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(image) if not (c.isalnum() or c in "+/=")), 0)
        return f"illegal base64 data at input byte {bad}"
    return None
