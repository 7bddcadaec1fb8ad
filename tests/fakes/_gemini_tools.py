"""Tool calling in the fake Gemini API: which call a request gets, and the tool-turn checks.

A request gets a function call instead of text when it declares functions
(``tools[].functionDeclarations``), ``toolConfig.functionCallingConfig.mode`` is not ``NONE``
and its last turn is a user turn with text (not function responses). The function is the
first of ``allowedFunctionNames`` when the mode is ``ANY`` and names are given, else the first
declared; its ``args`` come from its schema (``parametersJsonSchema``, else ``parameters``) by
the rules of ``_tool_calls.arguments_for``, the last user text going to the first string.

Gemini sends a call whole, in one part ``{"functionCall": {"name", "args"}}``, and ends the
reply with ``finishReason: "STOP"`` like a text reply; the thinking models (2.5 and later)
put a ``thoughtSignature`` (base64) on the first call of a reply. A last turn of function
responses gets the text ``"The tool said: <output>"``: each response's ``output`` (or the
whole response as JSON), joined by ``"; "``.

The tool turns are checked as Gemini checks them, each failure a 400 with Google's message
(seen in google-gemini/gemini-cli and langchain-ai/langchain issues):

- a turn of function responses not right after a turn of function calls;
- not as many function responses as the calls of the turn before;
- a turn of function calls not right after a user turn or a turn of function responses;
- Gemini 3 and later: in the current turn (the turns after the last user text), a step of
  function calls whose first call has no ``thoughtSignature``
  (ai.google.dev/gemini-api/docs/thought-signatures).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tests.fakes._gemini_validate import field
from tests.fakes._tool_calls import arguments_for

RESPONSE_AFTER_CALL: Final = (
    "Please ensure that function response turn comes immediately after a function call turn."
)
CALL_AFTER_USER: Final = (
    "Please ensure that function call turn comes immediately after a user turn or after a"
    " function response turn."
)
SAME_COUNT: Final = (
    "Please ensure that the number of function response parts is equal to the number of"
    " function call parts of the function call turn."
)
_VERSION: Final = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The call a request gets: the function's name and its arguments."""

    name: str
    args: dict[str, Any]


def version(model: str) -> tuple[int, int]:
    """``gemini-2.5-flash`` is (2, 5); a model that is not a Gemini is (0, 0)."""
    match = _VERSION.match(model)
    return (int(match[1]), int(match[2] or 0)) if match else (0, 0)


def signs_calls(model: str) -> bool:
    """The thinking models sign their function calls."""
    return version(model) >= (2, 5)


def new_signature() -> str:
    return base64.b64encode(secrets.token_bytes(48)).decode()


def planned_call(body: Mapping[str, Any]) -> FunctionCall | None:
    """The function call a request (its JSON body) gets, or None when it gets text."""
    declarations = [
        declaration
        for tool in body.get("tools") or ()
        if isinstance(tool, Mapping)
        for declaration in field(tool, "functionDeclarations") or ()
        if isinstance(declaration, Mapping) and isinstance(declaration.get("name"), str)
    ]
    config = field(field(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    contents = body.get("contents") or ()
    if not declarations or mode == "NONE" or not contents or not _asks(contents[-1]):
        return None
    chosen = declarations[0]
    allowed = field(config, "allowedFunctionNames") or ()
    if mode == "ANY" and allowed:
        chosen = next((d for d in declarations if d["name"] == allowed[0]), chosen)
    schema = field(chosen, "parametersJsonSchema") or chosen.get("parameters")
    return FunctionCall(chosen["name"], arguments_for(schema, _text(contents[-1])))


def tool_result_text(contents: Sequence[Mapping[str, Any]]) -> str | None:
    """``"The tool said: ..."`` when the last turn is function responses, else None."""
    if not contents:
        return None
    responses = _of(contents[-1], "functionResponse")
    if not responses:
        return None
    said = []
    for response in responses:
        value = response.get("response")
        output = value.get("output", value) if isinstance(value, Mapping) else value
        said.append(output if isinstance(output, str) else json.dumps(output, ensure_ascii=False))
    return "The tool said: " + "; ".join(said)


def turn_problem(contents: Sequence[Mapping[str, Any]], model: str) -> str | None:
    """The first tool-turn problem Gemini finds (module docstring), or None."""
    for index, content in enumerate(contents):
        before = contents[index - 1] if index else None
        responses = _of(content, "functionResponse")
        calls = _of(content, "functionCall")
        if responses:
            called = _of(before, "functionCall") if before is not None else []
            if not called:
                return RESPONSE_AFTER_CALL
            if len(called) != len(responses):
                return SAME_COUNT
        if calls and (before is None or (before.get("role") or "user") != "user"):
            return CALL_AFTER_USER
    return _unsigned(contents) if version(model) >= (3, 0) else None


def _unsigned(contents: Sequence[Mapping[str, Any]]) -> str | None:
    current = 0
    for index, content in enumerate(contents):
        if _asks(content):
            current = index + 1
    for index in range(current, len(contents)):
        parts = [p for p in contents[index].get("parts") or () if isinstance(p, Mapping)]
        first = next((p for p in parts if field(p, "functionCall") is not None), None)
        if first is not None and not field(first, "thoughtSignature"):
            name = field(first, "functionCall").get("name")
            return (
                "Function call is missing a thought_signature in functionCall parts. This is"
                " required for tools to work correctly, and missing thought_signature may lead"
                f" to degraded model performance. Additional data, function call"
                f" `default_api:{name}` , position {index + 1}. Please refer to"
                " https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
    return None


def _asks(content: Mapping[str, Any]) -> bool:
    """A user turn with something to answer: not a turn of function responses."""
    return (content.get("role") or "user") == "user" and not _of(content, "functionResponse")


def _of(content: Mapping[str, Any] | None, kind: str) -> list[Mapping[str, Any]]:
    """The ``functionCall`` or ``functionResponse`` objects of a turn's parts."""
    if content is None:
        return []
    found = []
    for part in content.get("parts") or ():
        value = field(part, kind) if isinstance(part, Mapping) else None
        if isinstance(value, Mapping):
            found.append(value)
    return found


def _text(content: Mapping[str, Any]) -> str:
    return "".join(
        part["text"]
        for part in content.get("parts") or ()
        if isinstance(part, Mapping) and isinstance(part.get("text"), str)
    )
