"""Anthropic's own reply relayed as it came, to a client of the Messages API (chatwire's
``/v1/messages``), and Anthropic's usage in the canonical shape, which every reader of the
family shares."""

from __future__ import annotations

from typing import Any

import msgspec

from chatwire.gateway.lines import ANY_JSON, Relay, StreamFailed


def added_usage(current: dict[str, Any] | None, usage: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI's usage from Anthropic's counts so far (``message_start``, then each
    ``message_delta``): the prompt includes the tokens read from and written to the prompt
    cache, told apart as ``cached_tokens`` and ``cache_write_tokens``, each where Anthropic
    reported it."""
    if not usage:
        return current
    current = current or {"prompt_tokens": 0, "completion_tokens": 0}
    read = usage.get("cache_read_input_tokens")
    written = usage.get("cache_creation_input_tokens")
    if usage.get("input_tokens") is not None or read is not None or written is not None:
        prompt = (usage.get("input_tokens") or 0) + (read or 0) + (written or 0)
        current["prompt_tokens"] = max(prompt, current["prompt_tokens"])
        details = current.get("prompt_tokens_details") or {}
        if read is not None:
            details["cached_tokens"] = read
        if written is not None:
            details["cache_write_tokens"] = written
        if details:
            current["prompt_tokens_details"] = details
    if usage.get("output_tokens") is not None:
        current["completion_tokens"] = usage["output_tokens"]
    current["total_tokens"] = current["prompt_tokens"] + current["completion_tokens"]
    return current


class Relayed(Relay):
    """A streamed reply's events, passed on unchanged; the usage read from ``message_start``
    and ``message_delta``. ``message_stop``, or an ``error`` event (relayed as Anthropic sent
    it), ends it."""

    __slots__ = ()
    prefix = b"data:"
    marks = (b'"message_start"', b'"message_delta"', b'"message_stop"', b'"error"')
    # A text, thinking or tool input delta: its line less the JSON around the piece.
    text_mark = b'"content_block_delta"'
    framing = len(
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}'
    )

    def __init__(self) -> None:
        super().__init__(ANY_JSON)

    def item(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "message_start":
            self.usage = added_usage(self.usage, (item.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self.usage = added_usage(self.usage, item.get("usage") or {})
        elif kind in ("message_stop", "error"):
            self.finished = True


MAX_ANSWER = 16 * 1024 * 1024


class RelayedAnswer(Relay):
    """A whole JSON answer (a ``message``, or ``count_tokens``' count), passed on unchanged
    once complete (up to 16 MiB); a message's usage read from it."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        super().__init__(ANY_JSON)
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, block: bytes) -> bytes:
        self._size += len(block)
        if self._size > MAX_ANSWER:
            raise StreamFailed(f"an answer larger than {MAX_ANSWER} bytes")
        self._parts.append(block)
        return b""

    def close(self) -> bytes:
        body = b"".join(self._parts)
        self._parts = []
        try:
            answer = ANY_JSON.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
            raise StreamFailed("an answer that is not JSON") from None
        usage = answer.get("usage")
        if isinstance(usage, dict):
            self.usage = added_usage(None, usage)
        self.finished = True
        return body
