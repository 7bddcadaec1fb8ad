"""/v1 to Ollama's /api/chat: the request translated, its NDJSON lines read back as chunks.

Ollama takes OpenAI's function tools in their own shape. It answers with whole tool calls,
arguments as a JSON object, in a ``done: false`` line of their own, and ends such a reply
with ``done_reason: "stop"``; since 0.12.10 each call carries an ``id``, before that none.
The reader hands each call to the client as one OpenAI tool-call delta (Ollama's id, else one
of chatwire's own; the arguments as JSON text) and finishes with ``tool_calls``.

Ollama has no ``tool_choice``: ``auto`` is what it does, ``none`` sends no tools, and a
choice it cannot honour (``required``, a named function) is a 400 naming it. Assistant tool
calls go back with their arguments parsed; a tool result carries the name of the function it
answers (``tool_name``), found by its ``tool_call_id`` among the earlier calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.openai_api.chunks import ChunkReader, delta, mid_stream, new_call_id
from chatwire.openai_api.translate import (
    BASE_FIELDS,
    call_arguments,
    chat_request,
    check_fields,
    number,
    stop_sequences,
    with_budget,
)
from chatwire.providers import content
from chatwire.providers.ollama import OllamaChat

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.base import Provider, Target, UpstreamCall

# The sampling parameters Ollama takes in ``options`` under the same names.
_OPTIONS = ("top_p", "seed", "presence_penalty", "frequency_penalty")
FIELDS = BASE_FIELDS | {
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stop",
    "response_format",
    *_OPTIONS,
}
_DROP_HINT = "(or have the operator set CHATWIRE_DROP_PARAMS=true)"
_encode = msgspec.json.encode


class OllamaChunks(ChunkReader):
    prefix = b""

    def __init__(self) -> None:
        super().__init__()
        self._calls = 0

    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        message = item.get("message") or {}
        text = message.get("content") or ""
        out = [delta(text)] if text else []
        calls = message.get("tool_calls")
        if calls:
            out.append(self._call_deltas(calls))
        if item.get("done"):
            self.finished = True
            prompt, completion = item.get("prompt_eval_count", 0), item.get("eval_count", 0)
            self.usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            if item.get("done_reason") == "length":
                reason = "length"
            else:
                # Ollama says "stop" after a tool call too; OpenAI's clients look for this.
                reason = "tool_calls" if self._calls else "stop"
            out.append(delta(finish=reason))
        return out

    def _call_deltas(self, calls: Any) -> dict[str, Any]:
        """Ollama's whole calls as OpenAI's first (and only) delta of each call."""
        pieces: list[dict[str, Any]] = []
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = _encode(arguments if arguments is not None else {}).decode()
            call_id = call.get("id")
            pieces.append(
                {
                    "index": self._calls,
                    "id": call_id if isinstance(call_id, str) and call_id else new_call_id(),
                    "type": "function",
                    "function": {"name": function.get("name") or "", "arguments": arguments},
                }
            )
            self._calls += 1
        return delta(tool_calls=pieces)


class OllamaTranslation:
    fields = FIELDS

    def build(
        self,
        provider: Provider,
        target: Target,
        fields: dict[str, Any],
        limits: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        label = provider.label
        check_fields(label, fields, self.fields, drop)
        adapter = provider.adapter
        if not isinstance(adapter, OllamaChat):  # pragma: no cover (chosen by adapter type)
            raise TypeError(f"{provider.name} does not speak Ollama's /api/chat")
        chat = chat_request(label, target.model, fields)
        _check_images(label, chat)
        payload = adapter.payload(provider, with_budget(target, fields), chat, limits)
        _add_tool_turns(payload["messages"], fields["messages"])
        options = {**payload.get("options", {}), **_options(fields)}
        if options:
            payload["options"] = options
        tools = _tools(label, fields, drop)
        if tools:
            payload["tools"] = tools
        answer_format = _format(label, fields.get("response_format"), drop)
        if answer_format is not None:
            payload["format"] = answer_format
        return adapter.call(provider, target, payload)

    def reader(self) -> ChunkReader:
        return OllamaChunks()


def _check_images(label: str, chat: ChatRequest) -> None:
    for index, message in enumerate(chat.messages):
        for part in content.parts(message):
            if isinstance(part, content.Image) and part.data is None:
                raise RequestInvalid(
                    f"{label} takes images inline only: send messages[{index}]'s image as a "
                    "data: URL (data:image/png;base64,...) instead of a link."
                )


def _options(fields: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        name: number(fields, name) for name in _OPTIONS if fields.get(name) is not None
    }
    number(fields, "temperature")  # a 400 here rather than Ollama's for a mistyped one
    stop = stop_sequences(fields)
    if stop is not None:
        options["stop"] = stop
    return options


def _format(label: str, response_format: Any, drop: bool) -> Any:
    """Ollama's ``format``: "json" for any JSON object, else the JSON schema itself."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        described = response_format.get("json_schema")
        schema = described.get("schema") if isinstance(described, dict) else None
        if isinstance(schema, dict):
            return schema
        raise RequestInvalid(
            "response_format of type 'json_schema' needs json_schema.schema: the JSON schema "
            "the answer must follow."
        )
    if drop:
        return None
    raise RequestInvalid(
        f"{label} does not take response_format {_encode(response_format).decode()[:200]}; "
        f"use type 'text', 'json_object' or 'json_schema' {_DROP_HINT}."
    )


def _tools(label: str, fields: Mapping[str, Any], drop: bool) -> list[dict[str, Any]]:
    """The tools to send: none with tool_choice "none", else every function tool."""
    tools = fields.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestInvalid("'tools' must be a list of function tools.")
    choice = fields.get("tool_choice")
    if fields.get("parallel_tool_calls") is False and not drop:
        raise RequestInvalid(
            f"{label} cannot be kept to one tool call per reply (parallel_tool_calls false); "
            f"leave parallel_tool_calls out {_DROP_HINT}."
        )
    if choice == "none":
        return []
    if choice not in (None, "auto") and not drop:
        raise RequestInvalid(f"{label} {_choice_refusal(choice)}")
    return [_tool(index, tool) for index, tool in enumerate(tools)]


def _choice_refusal(choice: Any) -> str:
    named = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(named, dict) and isinstance(named.get("name"), str):
        what = f"to call the function {named['name']!r} (tool_choice names it)"
    elif choice == "required":
        what = "to call a tool (tool_choice 'required')"
    else:
        what = f"to follow tool_choice {_encode(choice).decode()[:200]}"
    return (
        f"cannot be made {what}: it decides for itself whether to call one. Leave tool_choice "
        f"out or set it to 'auto' or 'none' {_DROP_HINT}."
    )


def _tool(index: int, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type", "function") != "function"
        or not isinstance(function, dict)
        or not isinstance(function.get("name"), str)
    ):
        raise RequestInvalid(
            f"tools[{index}] is not a function tool: send "
            '{"type": "function", "function": {"name": ..., "parameters": {...}}}.'
        )
    # OpenAI's "strict" has no counterpart in Ollama's tools.
    kept = {key: function[key] for key in ("name", "description", "parameters") if key in function}
    return {"type": "function", "function": kept}


def _add_tool_turns(messages: list[dict[str, Any]], given: list[dict[str, Any]]) -> None:
    """Adds the assistant's tool calls and the tool results' function names to ``messages``
    (the adapter's, one for each of the client's ``given``)."""
    names: dict[str, str] = {}
    for index, (message, original) in enumerate(zip(messages, given, strict=True)):
        calls = original.get("tool_calls")
        if message["role"] == "assistant" and calls:
            message["tool_calls"] = [
                _call(index, position, call, names) for position, call in enumerate(calls)
            ]
        elif message["role"] == "tool":
            call_id = original.get("tool_call_id")
            if not isinstance(call_id, str):
                raise RequestInvalid(
                    f"messages[{index}] is a tool result without a tool_call_id: give it the id "
                    "of the tool call it answers."
                )
            if call_id not in names:
                raise RequestInvalid(
                    f"messages[{index}] is a tool result for tool_call_id {call_id!r}, but no "
                    "earlier assistant message made a tool call with that id: send the "
                    "assistant message with its tool_calls before the results."
                )
            message["tool_name"] = names[call_id]


def _call(index: int, position: int, call: Any, names: dict[str, str]) -> dict[str, Any]:
    where = f"messages[{index}].tool_calls[{position}]"
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RequestInvalid(f"{where} needs a function with a name and arguments.")
    arguments = call_arguments(where, function)
    if isinstance(call.get("id"), str):
        names[call["id"]] = function["name"]
    return {"function": {"name": function["name"], "arguments": arguments}}
