"""Tool use in the fake Anthropic Messages API: which call a request gets, and the reply to
a tool's result.

When a request has ``tools`` (custom tools: ``name`` and ``input_schema``), its
``tool_choice`` is not ``{"type": "none"}`` and its last message is the user's own words (no
``tool_result`` blocks), the fake uses a tool instead of answering with text: the tool that
``{"type": "tool", "name": ...}`` names, else the first. It makes exactly one call, whatever
``disable_parallel_tool_use`` says. The input is derived from the tool's ``input_schema`` by
the rules of ``_tool_calls.arguments_for`` (the first string gets the last user text), so a
test knows it in advance.

As Claude does with ``tool_choice`` ``auto`` (or none given), it first says what it is about
to do, in a text block ``"I'll use <name>."``, then the ``tool_use`` block; with ``any`` or
``tool`` the API prefills the turn and the ``tool_use`` block comes alone. The stop reason is
``tool_use`` either way. Streamed, the input arrives as ``input_json_delta`` pieces after an
empty first one; a call without input sends only the empty piece (as captured from the real
API in vercel/ai's ``anthropic-tool-no-args.chunks.txt``).

When the last message is a user message that starts with ``tool_result`` blocks, the reply is
``"The tool said: <content>"``, the results' text joined by ``"; "``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes._text import message_text, random_id
from tests.fakes._tool_calls import argument_fragments, arguments_for


@dataclass(frozen=True, slots=True)
class ToolUse:
    """The tool call a request gets: what Claude says first (maybe nothing), name and input."""

    preamble: str
    name: str
    input: dict[str, Any]

    def input_json(self) -> str:
        """The input as Anthropic streams it: ``", "`` and ``": "`` between items."""
        return json.dumps(self.input, ensure_ascii=False)

    def input_pieces(self) -> list[str]:
        """The ``partial_json`` pieces after the empty first one."""
        return argument_fragments(self.input_json()) if self.input else []


def tool_use_id() -> str:
    return f"toolu_01{random_id(22)}"


def planned_use(body: Mapping[str, Any]) -> ToolUse | None:
    """The tool call a (valid) Messages API body gets, or None when it gets text."""
    tools = [
        tool
        for tool in body.get("tools") or ()
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str)
    ]
    choice = body.get("tool_choice") or {"type": "auto"}
    messages = body.get("messages")
    if not tools or choice.get("type") == "none" or not isinstance(messages, Sequence):
        return None
    last = messages[-1] if messages else None
    if not isinstance(last, Mapping) or last.get("role") != "user" or tool_results(last):
        return None
    tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
    preamble = f"I'll use {tool['name']}." if choice.get("type") == "auto" else ""
    text = message_text(last.get("content"))
    return ToolUse(preamble, tool["name"], arguments_for(tool.get("input_schema"), text))


def tool_results(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``tool_result`` blocks a message starts with."""
    content = message.get("content")
    results: list[Mapping[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, Mapping) or block.get("type") != "tool_result":
            break
        results.append(block)
    return results


def tool_result_reply(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """``"The tool said: ..."`` when the last message carries tool results, else None."""
    results = tool_results(messages[-1]) if messages else []
    if not results:
        return None
    said = "; ".join(message_text(result.get("content")) for result in results)
    return f"The tool said: {said}" if said else "The tool said nothing."
