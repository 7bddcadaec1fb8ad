"""OpenAI chat messages as the Messages API's ``system`` and alternating turns.

- ``system`` and ``developer`` messages before the first turn are joined into ``system``; a
  later one is kept as the user's words, where it was said.
- ``user``: text and image parts as text and image blocks (the chatbot-ui adapter's own).
- ``assistant``: its text, then one ``tool_use`` block per tool call: the call's id and name,
  and its arguments (a JSON string) parsed into the ``input`` object Anthropic wants.
- ``tool``: a ``tool_result`` block answering ``tool_call_id``, in a user turn.

Turns of one side in a row are merged into one, as the API wants; within a user turn, tool
results come before anything else, as the API also wants.
"""

from __future__ import annotations

from typing import Any

import msgspec

from chatwire.api.schemas import Message, Part
from chatwire.errors import RequestInvalid
from chatwire.openai_api.translate import call_arguments
from chatwire.providers.anthropic import content_blocks

_ROLES = "system, developer, user, assistant or tool"


def conversation(label: str, messages: Any) -> tuple[str, list[dict[str, Any]]]:
    """The ``system`` text and the turns for the client's ``messages``."""
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid("'messages' must be a non-empty list of chat messages.")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestInvalid(f"messages[{index}] must be an object with a role.")
        role = message.get("role")
        if role in ("system", "developer"):
            blocks = _blocks(label, index, message)
            if not turns:
                system.extend(block["text"] for block in blocks if block["type"] == "text")
                continue
            _append(turns, "user", blocks)
        elif role == "user":
            _append(turns, "user", _blocks(label, index, message))
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise RequestInvalid(f"messages[{index}].tool_calls must be a list.")
            uses = [_tool_use(index, number, call) for number, call in enumerate(calls)]
            _append(turns, "assistant", _blocks(label, index, message) + uses)
        elif role == "tool":
            _append(turns, "user", [_tool_result(label, index, message)])
        else:
            raise RequestInvalid(
                f"messages[{index}] has the role {role!r}; {label} takes {_ROLES} through /v1."
            )
    return "\n\n".join(system), turns


def _blocks(label: str, index: int, message: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        content = msgspec.convert(message.get("content"), str | list[Part] | None)
    except msgspec.ValidationError as exc:
        raise RequestInvalid(
            f"messages[{index}].content is not something {label} takes (text, or text and "
            f"image_url parts): {exc}"
        ) from exc
    return content_blocks(Message(role="user", content=content))


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if not turns or turns[-1]["role"] != role:
        turns.append({"role": role, "content": blocks})
        return
    content: list[dict[str, Any]] = turns[-1]["content"]
    if blocks[0]["type"] == "tool_result":
        results = 0
        while results < len(content) and content[results]["type"] == "tool_result":
            results += 1
        content[results:results] = blocks
    else:
        content.extend(blocks)


def _tool_use(index: int, number: int, call: Any) -> dict[str, Any]:
    where = f"messages[{index}].tool_calls[{number}]"
    function = call.get("function") if isinstance(call, dict) else None
    if (
        not isinstance(function, dict)
        or call.get("type", "function") != "function"
        or not isinstance(call.get("id"), str)
        or not isinstance(function.get("name"), str)
    ):
        raise RequestInvalid(
            f"{where} must be a function call with an id: "
            '{"id": ..., "type": "function", "function": {"name": ..., "arguments": "{...}"}}.'
        )
    arguments = call_arguments(where, function)
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def _tool_result(label: str, index: int, message: dict[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise RequestInvalid(
            f"messages[{index}] (role tool) needs the tool_call_id of the call it answers."
        )
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            result["content"] = content
    else:
        blocks = _blocks(label, index, message)
        if blocks:
            result["content"] = blocks
    return result
