"""Anthropic's event stream read back: the text only (the chatbot-ui route) or as canonical
deltas (every other door), with the usage as it is reported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.families.anthropic_relay import added_usage
from chatwire.families.openai_reply import mid_stream
from chatwire.gateway.call import delta
from chatwire.gateway.lines import ANY_JSON, DeltaReader, TextReader

if TYPE_CHECKING:
    pass


FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# The reply as text: typed, reading only the text deltas and the end.


class _TextDelta(msgspec.Struct):
    type: str = ""
    text: str | None = None


class _Message(msgspec.Struct):
    usage: dict[str, Any] | None = None


class _Event(msgspec.Struct):
    type: str
    delta: _TextDelta | None = None
    error: Any = None
    # message_start's message (its usage), message_delta's usage: decoded only there.
    message: _Message | None = None
    usage: dict[str, Any] | None = None


EVENT_DECODER = msgspec.json.Decoder(_Event)


class TextEvents(TextReader):
    """Text arrives in content_block_delta; message_stop ends the reply. The "event:" lines
    repeat the type that each data value carries itself."""

    __slots__ = ()
    prefix = b"data:"

    def item(self, event: _Event) -> str | None:
        if event.type == "content_block_delta":
            change = event.delta
            return change.text if change is not None and change.type == "text_delta" else None
        if event.type == "message_stop":
            self.finished = True
        elif event.type == "message_delta":
            if event.usage:
                self.usage = added_usage(self.usage, event.usage)
        elif event.type == "message_start":
            if event.message is not None and event.message.usage:
                self.usage = added_usage(self.usage, event.message.usage)
        elif event.type == "error":
            raise mid_stream(event.error)
        return None


# The reply as deltas.


class Events(DeltaReader):
    __slots__ = ("_calls", "_open", "_signature")
    prefix = b"data:"

    def __init__(self) -> None:
        super().__init__(ANY_JSON)
        self._calls: dict[Any, int] = {}  # content block index -> tool call index
        # The signature of the thinking block being read, given once the block ends.
        self._signature: Any = None
        # Tool calls whose arguments are still arriving: the call, its pieces.
        self._open: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item.get("type")
        if kind == "content_block_delta":
            change = item.get("delta") or {}
            kind = change.get("type")
            if kind == "text_delta":
                return [delta(change.get("text", ""))]
            if kind == "input_json_delta":
                self._arguments(item.get("index"), change.get("partial_json"))
            elif kind == "thinking_delta":
                return [_reasoning("reasoning_content", change.get("thinking", ""))]
            elif kind == "signature_delta":
                self._signature = change.get("signature")
        elif kind == "content_block_start":
            return self._start(item.get("index"), item.get("content_block") or {})
        elif kind == "content_block_stop":
            return self._stop(item.get("index"))
        elif kind == "message_start":
            usage = (item.get("message") or {}).get("usage") or {}
            self.usage = added_usage(self.usage, usage)
            return [delta("", role="assistant")]
        elif kind == "message_delta":
            self.usage = added_usage(self.usage, item.get("usage") or {})
            reason = (item.get("delta") or {}).get("stop_reason")
            if reason:
                return [delta(finish=FINISH.get(reason, "stop"))]
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise mid_stream(item.get("error"))
        return []

    def _start(self, index: Any, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "tool_use":
            call = len(self._calls)
            self._calls[index] = call
            first = {
                "index": call,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            self._open[call] = (first, [])
            return []
        if block.get("type") == "text" and block.get("text"):
            return [delta(block["text"])]
        if block.get("type") == "thinking" and block.get("thinking"):
            return [_reasoning("reasoning_content", block["thinking"])]
        if block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            return [_reasoning("reasoning_redacted", block["data"])]
        return []

    def _arguments(self, index: Any, piece: Any) -> None:
        call = self._calls.get(index)
        if call is not None and call in self._open and isinstance(piece, str):
            self._open[call][1].append(piece)

    def _stop(self, index: Any) -> list[dict[str, Any]]:
        """A tool call is complete: it goes to the client whole, in one delta, as Mistral
        sends calls (its SDKs refuse a delta without the function's name)."""
        call = self._calls.get(index)
        opened = self._open.pop(call, None) if call is not None else None
        if opened is None:
            signature, self._signature = self._signature, None
            if isinstance(signature, str) and signature:
                return [_reasoning("reasoning_signature", signature)]
            return []
        first, pieces = opened
        # A call without arguments streams no JSON at all; OpenAI's clients parse "{}".
        first["function"]["arguments"] = "".join(pieces) or "{}"
        return [delta(tool_calls=[first])]


def _reasoning(key: str, value: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {key: value}, "finish_reason": None}]}
