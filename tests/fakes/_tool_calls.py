"""Tool calling for the fakes that take OpenAI-shaped messages (Mistral, OpenAI-compatible).

When a request has ``tools`` (function tools), ``tool_choice`` is not ``"none"`` and its last
message is a user message, the fake calls a tool instead of answering with text: the tool
``tool_choice`` names (``{"type": "function", "function": {"name": ...}}``), else the first
one. It makes exactly one call, whatever ``parallel_tool_calls`` says.

The arguments are derived from the tool's JSON schema (``function.parameters``), so a test can
know them in advance (``expected_tool_call``): every ``required`` property (or, when none is
required, the first property) gets a value by its schema:

- ``const``, else the first ``enum`` value;
- the first string property: the last user message's text; later ones: their own name;
- integer and number: ``minimum`` when given, else 1; boolean: true; null: null;
- array: ``[]``; object: its own arguments, by the same rules;
- ``anyOf`` / ``oneOf`` / a list of types: the first branch that is not null.

When the last message is a tool message (the tool's result), the text reply is
``"The tool said: <content>"``, the contents of the trailing tool messages joined by ``"; "``.
A ``reply`` option replaces text replies only: tool calls are still made. A test may turn tool
calls off (``calls_tools = False``: text, tools offered or not) or give every call its
arguments (``tool_arguments``), for clients whose tools and words it does not choose (coding
agents).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tests.fakes._server import FakeServer
from tests.fakes._text import message_text

_FRAGMENT: Final = re.compile(r"\s?\w+|\s+|[^\w\s]+")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The call a request gets: the function's name and its arguments."""

    name: str
    arguments: dict[str, Any]


def planned_call(request: Mapping[str, Any]) -> ToolCall | None:
    """The tool call a chat request gets, or None when it is answered with text."""
    tools = function_tools(request.get("tools"))
    if not tools or request.get("tool_choice") == "none":
        return None
    messages = request.get("messages")
    if not isinstance(messages, Sequence) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "user":
        return None
    function = _chosen(tools, request.get("tool_choice"))
    text = message_text(last.get("content"))
    return ToolCall(str(function["name"]), arguments_for(function.get("parameters"), text))


def function_tools(tools: object) -> list[Mapping[str, Any]]:
    """The ``function`` objects of the function tools in a ``tools`` list."""
    if not isinstance(tools, list):
        return []
    found: list[Mapping[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            found.append(function)
    return found


def _chosen(functions: list[Mapping[str, Any]], choice: object) -> Mapping[str, Any]:
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        wanted = choice["function"].get("name")
        for function in functions:
            if function["name"] == wanted:
                return function
    return functions[0]


def arguments_for(schema: object, text: str) -> dict[str, Any]:
    """Deterministic arguments for a JSON schema of ``type: object`` (module docstring)."""
    arguments, _ = _object_value(schema, text, text_used=False)
    return arguments


def _object_value(schema: object, text: str, *, text_used: bool) -> tuple[dict[str, Any], bool]:
    if not isinstance(schema, Mapping):
        return {}, text_used
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return {}, text_used
    required = [
        name
        for name in schema.get("required") or ()
        if isinstance(name, str) and name in properties
    ]
    names = required or [next(iter(properties))]
    values: dict[str, Any] = {}
    for name in names:
        values[name], text_used = _value(properties[name], name, text, text_used=text_used)
    return values, text_used


def _value(schema: object, name: str, text: str, *, text_used: bool) -> tuple[Any, bool]:
    if not isinstance(schema, Mapping):
        return (name, text_used) if text_used else (text, True)
    if "const" in schema:
        return schema["const"], text_used
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0], text_used
    for union in ("anyOf", "oneOf"):
        branches = schema.get(union)
        if isinstance(branches, list) and branches:
            branch = next((b for b in branches if _type_of(b) != "null"), branches[0])
            return _value(branch, name, text, text_used=text_used)
    kind = _type_of(schema)
    if kind == "string" or (kind is None and "properties" not in schema):
        return (name, text_used) if text_used else (text, True)
    if kind in ("integer", "number"):
        minimum = schema.get("minimum")
        number_ok = isinstance(minimum, int | float) and not isinstance(minimum, bool)
        return (minimum if number_ok else 1), text_used
    if kind == "boolean":
        return True, text_used
    if kind == "null":
        return None, text_used
    if kind == "array":
        return [], text_used
    return _object_value(schema, text, text_used=text_used)


def _type_of(schema: object) -> str | None:
    if not isinstance(schema, Mapping):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return kind if isinstance(kind, str) else None


def tool_result_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """``"The tool said: ..."`` when the last message is a tool message, else None."""
    results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") != "tool":
            break
        results.append(message_text(message.get("content")))
    if not results:
        return None
    said = "; ".join(reversed(results))
    return f"The tool said: {said}" if said else "The tool said nothing."


def argument_fragments(arguments: str) -> list[str]:
    """The arguments JSON cut the way OpenAI streams it: words, and runs of punctuation.

    ``'{"city":"Paris"}'`` becomes ``['{"', 'city', '":"', 'Paris', '"}']``.
    """
    return _FRAGMENT.findall(arguments)


class ToolCallingServer(FakeServer):
    """A fake whose requests carry OpenAI-shaped ``messages``, ``tools`` and ``tool_choice``."""

    def planned(self, request: Mapping[str, Any]) -> ToolCall | None:
        """The tool call a chat request gets, as the test set the fake (``calls_tools``,
        ``tool_arguments``), or None when it is answered with text."""
        call = planned_call(request) if self.calls_tools else None
        if call is not None and self.tool_arguments is not None:
            call = ToolCall(call.name, dict(self.tool_arguments))
        return call

    def will_call_tool(self, request: Mapping[str, Any]) -> bool:
        """Whether this chat request (its JSON body) is answered with a tool call."""
        return self.planned(request) is not None

    def expected_tool_call(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The name and arguments of the tool call this chat request (its JSON body) gets.

        ValueError when the request is answered with text (see ``will_call_tool``).
        """
        call = self.planned(request)
        if call is None:
            raise ValueError(
                "this request is answered with text, not a tool call: it needs function"
                " tools, a tool_choice other than 'none' and a user message last"
            )
        return call.name, call.arguments

    def _reply_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        said = tool_result_text(messages)
        return said if said is not None else super()._reply_text(messages)
