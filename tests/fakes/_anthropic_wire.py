"""What the fake Anthropic upstream says: stream events, the message object, error bodies.

A stream (``text/event-stream; charset=utf-8``) is named events, each ``event: <type>`` then
``data: <json>`` then a blank line: ``message_start`` (usage.input_tokens, output_tokens 1),
``content_block_start`` (an empty text block), ``ping``, one ``content_block_delta`` per piece
(``text_delta``), ``content_block_stop``, ``message_delta`` (stop_reason and the final
output_tokens) and ``message_stop``. The ping's JSON has a space after its colon, as Anthropic
sends it; every other event is compact JSON.

A reply with thinking (``_anthropic_thinking``) starts with its thinking block, whole, in the
opening: ``content_block_start`` (``{"type": "thinking", "thinking": "", "signature": ""}``),
a ``thinking_delta`` per piece, a ``signature_delta``, ``content_block_stop``; redacted
thinking is ``content_block_start`` with the whole ``redacted_thinking`` block, then
``content_block_stop``.

A reply that uses a tool has one more block, after the text (or first, when there is no
text): ``content_block_start`` with ``{"type": "tool_use", "id", "name", "input": {}}``, an
``input_json_delta`` with an empty ``partial_json``, one ``input_json_delta`` per piece of the
input's JSON, ``content_block_stop``; its stop reason is ``tool_use``.

Errors: ``{"type":"error","error":{"type":...,"message":...},"request_id":"req_..."}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tests.fakes._anthropic_thinking import Thinking
from tests.fakes._text import compact, count_tokens, message_text, random_id

PING_EVENT: Final = b'event: ping\ndata: {"type": "ping"}\n\n'
OVERLOADED: Final = ("overloaded_error", "Overloaded")
RATE_LIMITED_MESSAGE: Final = (
    "This request would exceed the rate limit for your organization of 50 requests per"
    " minute. For details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can"
    " see the response headers for current usage. Please reduce the prompt length or the"
    " maximum tokens requested, or try again later. You may also contact sales at"
    " https://www.anthropic.com/contact-sales to discuss your options for a rate limit"
    " increase."
)


def message_id() -> str:
    return f"msg_01{random_id(22)}"


def request_id() -> str:
    return f"req_011C{random_id(20)}"


def event(kind: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {compact({'type': kind, **data})}\n\n".encode()


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id(),
    }


def error_event() -> bytes:
    """The in-stream error Anthropic sends when it gives up on a started reply."""
    kind, message = OVERLOADED
    error = {"type": "error", "error": {"type": kind, "message": message}}
    return f"event: error\ndata: {compact(error)}\n\n".encode()


def input_tokens(body: Mapping[str, Any]) -> int:
    """One token per piece of the system prompt and of every message's text."""
    system = body.get("system")
    total = count_tokens(system if isinstance(system, str) else message_text(system))
    return total + sum(count_tokens(message_text(m.get("content"))) for m in body["messages"])


def start_usage(prompt_tokens: int, cache_write: int = 0, cache_read: int = 0) -> dict[str, int]:
    return {
        "input_tokens": prompt_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": 1,
    }


def message_body(
    *,
    msg_id: str,
    model: str,
    text: str,
    stop_reason: str | None,
    usage: dict[str, int],
    tool_use: Mapping[str, Any] | None = None,
    thinking: Thinking | None = None,
) -> dict[str, Any]:
    """A ``message`` object: empty content and no stop reason in ``message_start``; with
    ``thinking``, its block first; with ``tool_use``, its text block (when there is text) and
    the ``tool_use`` block."""
    content: list[Mapping[str, Any]] = []
    if stop_reason is not None and thinking is not None:
        content.append(thinking.block())
    if stop_reason is not None:
        if text or tool_use is None:
            content.append({"type": "text", "text": text})
        if tool_use is not None:
            content.append(tool_use)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


class AnthropicFraming:
    """One streamed message, event by event.

    With ``tool_use`` (the whole block: type, id, name and input), the last ``input_pieces``
    of ``pieces`` are the pieces of its input's JSON, after the text.
    """

    def __init__(
        self,
        model: str,
        prompt_tokens: int,
        pieces: Sequence[str],
        truncated: bool,
        tool_use: Mapping[str, Any] | None = None,
        input_pieces: int = 0,
        thinking: Thinking | None = None,
        usage: Mapping[str, int] | None = None,
    ):
        self._model = model
        self._prompt_tokens = prompt_tokens
        self._usage = usage
        self._thinking = thinking
        self._output_tokens = len(pieces) + (len(thinking.pieces()) if thinking else 0)
        self._text_pieces = len(pieces) - input_pieces
        self._tool_use = tool_use
        self._block = -1
        self._in_tool = False
        self._sent = 0
        if tool_use is not None:
            self._stop_reason = "tool_use"
        else:
            self._stop_reason = "max_tokens" if truncated else "end_turn"

    def opening(self) -> bytes:
        start = message_body(
            msg_id=message_id(),
            model=self._model,
            text="",
            stop_reason=None,
            usage=dict(self._usage) if self._usage else start_usage(self._prompt_tokens),
        )
        thought = self._think() if self._thinking is not None else b""
        first = (
            self._start_text() if self._text_pieces or not self._tool_use else self._start_tool()
        )
        return event("message_start", {"message": start}) + thought + first + PING_EVENT

    def _think(self) -> bytes:
        assert self._thinking is not None
        self._block += 1
        index = self._block
        if self._thinking.redacted is not None:
            start = {"index": index, "content_block": self._thinking.block()}
            return event("content_block_start", start) + event(
                "content_block_stop", {"index": index}
            )
        block = {"type": "thinking", "thinking": "", "signature": ""}
        out = [event("content_block_start", {"index": index, "content_block": block})]
        for piece in self._thinking.pieces():
            change = {"type": "thinking_delta", "thinking": piece}
            out.append(event("content_block_delta", {"index": index, "delta": change}))
        change = {"type": "signature_delta", "signature": self._thinking.signature}
        out.append(event("content_block_delta", {"index": index, "delta": change}))
        out.append(event("content_block_stop", {"index": index}))
        return b"".join(out)

    def piece(self, text: str, *, last: bool) -> bytes:
        self._sent += 1
        if self._sent <= self._text_pieces:
            delta = {"index": self._block, "delta": {"type": "text_delta", "text": text}}
            return event("content_block_delta", delta)
        opening = b"" if self._in_tool else self._stop() + self._start_tool()
        return opening + self._input(text)

    def closing(self) -> bytes:
        opening = b""
        if self._tool_use is not None and not self._in_tool:
            opening = self._stop() + self._start_tool()
        delta = {
            "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": self._output_tokens},
        }
        return opening + self._stop() + event("message_delta", delta) + event("message_stop", {})

    def error(self) -> bytes:
        return error_event()

    def _start_text(self) -> bytes:
        self._block += 1
        block = {"index": self._block, "content_block": {"type": "text", "text": ""}}
        return event("content_block_start", block)

    def _start_tool(self) -> bytes:
        assert self._tool_use is not None
        self._block += 1
        self._in_tool = True
        block = {"index": self._block, "content_block": {**self._tool_use, "input": {}}}
        return event("content_block_start", block) + self._input("")

    def _input(self, piece: str) -> bytes:
        delta = {"index": self._block, "delta": {"type": "input_json_delta", "partial_json": piece}}
        return event("content_block_delta", delta)

    def _stop(self) -> bytes:
        return event("content_block_stop", {"index": self._block})


def rate_limit_headers(remaining: int = 49) -> dict[str, str]:
    """The ``anthropic-ratelimit-*`` headers, requests and tokens, reset a minute from now."""
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    return {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": str(remaining),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": "50000",
        "anthropic-ratelimit-tokens-remaining": str(remaining * 1000),
        "anthropic-ratelimit-tokens-reset": reset,
    }


def model_card(model: str) -> dict[str, Any]:
    """One entry of ``GET /v1/models``."""
    return {
        "type": "model",
        "id": model,
        "display_name": model.replace("-", " ").title(),
        "created_at": "2025-05-14T00:00:00Z",
    }
