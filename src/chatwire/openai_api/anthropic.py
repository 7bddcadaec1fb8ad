"""/v1 to Anthropic's Messages API: the request translated, its events read back as chunks.

The request: system (and developer) messages before the conversation become ``system``; the
turns alternate user / assistant, turns of one side in a row merged, as the API wants. An
assistant message's ``tool_calls`` become ``tool_use`` blocks after its text; ``tool``
messages become ``tool_result`` blocks at the start of the next user turn (``anthropic_turns``).
``tools``, ``tool_choice``, ``parallel_tool_calls``, ``stop``, ``top_p``, ``top_k`` and
``user`` have direct equivalents; any other field is refused by name (or dropped, with
``CHATWIRE_DROP_PARAMS``).

The reply: text deltas as content; each ``tool_use`` block as one OpenAI tool call, numbered
from 0 in the order the blocks start, its ``input_json_delta`` pieces as the arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatwire.errors import RequestInvalid
from chatwire.openai_api.anthropic_turns import conversation
from chatwire.openai_api.chunks import ChunkReader, delta, mid_stream
from chatwire.openai_api.translate import (
    BASE_FIELDS,
    check_fields,
    number,
    stop_sequences,
    with_budget,
)
from chatwire.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicMessages
from chatwire.providers.limits import clamp_temperature, max_tokens

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chatwire.catalogue import ModelEntry
    from chatwire.providers.base import Provider, Target, UpstreamCall

ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
ACCEPTED_FIELDS = BASE_FIELDS | {
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stop",
    "top_p",
    "top_k",
    "user",
}
_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


class AnthropicChunks(ChunkReader):
    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[Any, int] = {}  # content block index -> tool call index
        self._without_arguments: set[int] = set()

    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item.get("type")
        if kind == "content_block_delta":
            change = item.get("delta") or {}
            if change.get("type") == "text_delta":
                return [delta(change.get("text", ""))]
            if change.get("type") == "input_json_delta":
                return self._arguments(item.get("index"), change.get("partial_json"))
        elif kind == "content_block_start":
            return self._start(item.get("index"), item.get("content_block") or {})
        elif kind == "content_block_stop":
            call = self._calls.get(item.get("index"))
            if call in self._without_arguments:
                # A call without arguments streams no JSON at all; OpenAI's clients parse "{}".
                self._without_arguments.discard(call)
                return [delta(tool_calls=[{"index": call, "function": {"arguments": "{}"}}])]
        elif kind == "message_start":
            usage = (item.get("message") or {}).get("usage") or {}
            self._usage(prompt=usage.get("input_tokens"))
            return [delta("", role="assistant")]
        elif kind == "message_delta":
            usage = item.get("usage") or {}
            self._usage(prompt=usage.get("input_tokens"), completion=usage.get("output_tokens"))
            reason = (item.get("delta") or {}).get("stop_reason")
            if reason:
                return [delta(finish=ANTHROPIC_FINISH.get(reason, "stop"))]
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise mid_stream(item.get("error"))
        return []

    def _start(self, index: Any, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "tool_use":
            call = len(self._calls)
            self._calls[index] = call
            self._without_arguments.add(call)
            function = {"name": block.get("name"), "arguments": ""}
            first = {"index": call, "id": block.get("id"), "type": "function", "function": function}
            return [delta(tool_calls=[first])]
        if block.get("type") == "text" and block.get("text"):
            return [delta(block["text"])]
        return []

    def _arguments(self, index: Any, piece: Any) -> list[dict[str, Any]]:
        call = self._calls.get(index)
        if call is None or not isinstance(piece, str) or not piece:
            return []  # Anthropic opens each call's JSON with an empty piece
        self._without_arguments.discard(call)
        return [delta(tool_calls=[{"index": call, "function": {"arguments": piece}}])]

    def _usage(self, prompt: int | None = None, completion: int | None = None) -> None:
        usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0}
        if prompt is not None:
            usage["prompt_tokens"] = prompt
        if completion is not None:
            usage["completion_tokens"] = completion
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.usage = usage


class AnthropicTranslation:
    fields = ACCEPTED_FIELDS

    def build(
        self,
        provider: Provider,
        target: Target,
        fields: dict[str, Any],
        limits: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        check_fields(provider.label, fields, self.fields, drop)
        adapter = provider.adapter
        if not isinstance(adapter, AnthropicMessages):  # the route picks by adapter
            raise TypeError(f"{provider.name} does not speak Anthropic's Messages API")
        target = with_budget(target, fields)
        system, turns = conversation(provider.label, fields.get("messages"))
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": turns,
            "max_tokens": max_tokens(provider.quirks, target, limits) or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            payload["system"] = system
        payload.update(_sampling(provider, target, fields, limits))
        payload.update(_tooling(fields))
        return adapter.call(provider, target, payload)

    def reader(self) -> ChunkReader:
        return AnthropicChunks()


def _sampling(
    provider: Provider, target: Target, fields: Mapping[str, Any], limits: ModelEntry | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Clamped to the model's range from the catalogue, as on the chatbot-ui route.
    value = clamp_temperature(provider.quirks, number(fields, "temperature"), limits)
    if value is not None:
        out["temperature"] = value
    top_p = number(fields, "top_p")
    # Claude 4.5 and later refuse both at once; OpenAI clients often send both: the
    # temperature, the setting people actually tune, is kept.
    if top_p is not None and "temperature" not in out:
        out["top_p"] = top_p
    top_k = fields.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise RequestInvalid("'top_k' must be an integer.")
        out["top_k"] = top_k
    stop = stop_sequences(fields)
    if stop is not None:
        out["stop_sequences"] = stop
    user = fields.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise RequestInvalid("'user' must be a string.")
        out["metadata"] = {"user_id": user}
    return out


def _tooling(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` in Anthropic's shapes."""
    given = fields.get("tools")
    if given is not None and not isinstance(given, list):
        raise RequestInvalid("'tools' must be a list of function tools.")
    tools = [_tool(index, tool) for index, tool in enumerate(given or ())]
    choice = _choice(fields.get("tool_choice"))
    if not tools:
        # Anthropic refuses any tool_choice without tools; "auto", "none" and
        # parallel_tool_calls mean nothing then, a forced call cannot be made.
        if choice is not None and choice["type"] in ("any", "tool"):
            raise RequestInvalid(
                "tool_choice asks for a tool call but the request has no tools: "
                "send the tools, or leave tool_choice out."
            )
        return {}
    parallel = fields.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise RequestInvalid("'parallel_tool_calls' must be true or false.")
    if parallel is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    out: dict[str, Any] = {"tools": tools}
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _tool(index: int, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(function, dict)
        or tool.get("type", "function") != "function"
        or not isinstance(function.get("name"), str)
    ):
        raise RequestInvalid(
            f"tools[{index}] must be a function tool: "
            '{"type": "function", "function": {"name": ..., "parameters": {...}}}.'
        )
    schema = function.get("parameters")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    elif not isinstance(schema, dict):
        raise RequestInvalid(f"tools[{index}].function.parameters must be a JSON schema object.")
    elif "type" not in schema:
        # OpenAI takes a schema without its type; Anthropic wants "object" said.
        schema = {"type": "object", **schema}
    out: dict[str, Any] = {"name": function["name"]}
    description = function.get("description")
    if isinstance(description, str) and description:
        out["description"] = description
    out["input_schema"] = schema
    return out


def _choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICES:
        return {"type": _CHOICES[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if (
        isinstance(function, dict)
        and choice.get("type") == "function"
        and isinstance(function.get("name"), str)
    ):
        return {"type": "tool", "name": function["name"]}
    raise RequestInvalid(
        "tool_choice must be 'auto', 'required', 'none' or "
        '{"type": "function", "function": {"name": ...}}.'
    )
