"""Each wire format's stream, read as OpenAI chat.completion.chunk pieces.

A ``ChunkReader`` turns socket reads into a list of chunk bodies (``choices`` and nothing
else; the route adds id, model and created), keeps the usage the provider reported, and
knows when the reply has properly ended. OpenAI-compatible upstreams already send chunks;
the readers of the translated families live in their own modules.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from chatwire.providers.base import StreamFailed
from chatwire.providers.error_text import readable_message
from chatwire.providers.lines import DECODE_ERRORS, MAX_LINE

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def delta(
    content: str | None = None,
    finish: str | None = None,
    role: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One chunk body with a single choice."""
    body: dict[str, Any] = {}
    if role is not None:
        body["role"] = role
    if content is not None:
        body["content"] = content
    if tool_calls is not None:
        body["tool_calls"] = tool_calls
    return {"choices": [{"index": 0, "delta": body, "finish_reason": finish}]}


class ChunkReader:
    prefix = b"data:"
    # Whether the reader puts the usage on its chunks itself (else the relay adds it to the
    # finish chunk when the client did not ask for OpenAI's usage chunk).
    places_usage = False

    def __init__(self) -> None:
        self._rest = b""
        self.finished = False
        self.usage: dict[str, Any] | None = None

    def feed(self, block: bytes) -> list[dict[str, Any]]:
        lines = (self._rest + block).split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > MAX_LINE:
            raise StreamFailed(f"a line longer than {MAX_LINE} bytes")
        out: list[dict[str, Any]] = []
        for line in lines:
            if self.prefix:
                if not line.startswith(self.prefix):
                    continue
                line = line[len(self.prefix) :]
            data = line.strip()
            if not data:
                continue
            if data == b"[DONE]":
                self.finished = True
                out.extend(self.ended())
                continue
            try:
                item = _decode(data)
            except DECODE_ERRORS as exc:
                raise StreamFailed(f"an event that is not valid JSON ({exc})") from exc
            try:
                out.extend(self.convert(item))
            except (AttributeError, TypeError, KeyError, ValueError) as exc:
                # Valid JSON of a shape the provider never sends (a field of another type).
                raise StreamFailed(f"an event of an unexpected shape ({exc!r})") from exc
        return out

    def close(self) -> list[dict[str, Any]]:
        rest, self._rest = self._rest, b""
        out = self.feed(rest + b"\n") if rest.strip() else []
        if not self.finished:
            raise StreamFailed("the stream ended before the reply was complete")
        return out

    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def ended(self) -> list[dict[str, Any]]:
        """Chunks still held back when the stream's end marker arrives."""
        return []


class OpenAIChunks(ChunkReader):
    """Already chunks. The reply ends at [DONE]: OpenAI sends its usage chunk after the
    finish reason; a stream that ends after a finish reason without [DONE] is complete too."""

    places_usage = True

    def __init__(self, keep_usage: bool = False, usage_follows: bool = False) -> None:
        super().__init__()
        self._finish_seen = False
        self._call_ids: dict[str, int] = {}
        # Without include_usage, usage stays where the provider put it (Mistral's own
        # clients read it from the last chunk); with it, it moves to OpenAI's usage chunk.
        self._keep_usage = keep_usage
        # OpenAI sends usage (when asked) in a chunk of its own after the finish reason:
        # without include_usage, the finish chunk waits for it and carries it, as Mistral's.
        self._hold_finish = keep_usage and usage_follows
        # From the first finish chunk on (one per choice when n > 1), in order.
        self._held: list[dict[str, Any]] = []

    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        usage = item.get("usage") if self._keep_usage else item.pop("usage", None)
        self.usage = usage or self.usage
        choices = item.get("choices") or []
        finishing = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self._finish_seen = finishing = True
            delta = choice.get("delta")
            if isinstance(delta, dict) and delta.get("tool_calls"):
                self._number(delta["tool_calls"])
        if not choices:
            if not (self._held and usage):
                return []
            held, self._held = self._held, []
            held[-1] = {**held[-1], "usage": usage}
            return held
        chunk: dict[str, Any] = {"choices": choices}
        if self._keep_usage and usage:
            chunk["usage"] = usage
        elif self._hold_finish and (finishing or self._held):
            self._held.append(chunk)
            return []
        return [chunk]

    def ended(self) -> list[dict[str, Any]]:
        held, self._held = self._held, []
        return held

    def close(self) -> list[dict[str, Any]]:
        self.finished = self.finished or self._finish_seen
        return super().close() + self.ended()

    def _number(self, calls: Any) -> None:
        """OpenAI clients gather a streamed call by ``index`` and want its ``type``; Mistral
        sends each call whole, with neither: number them by id, in order."""
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            call_id = call.get("id")
            if "index" not in call:
                if isinstance(call_id, str):
                    call["index"] = self._call_ids.setdefault(call_id, len(self._call_ids))
                else:
                    call["index"] = max(len(self._call_ids) - 1, 0)
            if call_id is not None and "type" not in call:
                call["type"] = "function"


def new_call_id() -> str:
    """An id, as OpenAI's look, for a tool call a provider sent without one."""
    return f"call_{secrets.token_hex(12)}"


def mid_stream(error: Any) -> StreamFailed:
    """The failure for an error the provider reported inside its stream."""
    text = readable_message(msgspec.json.encode(error)) or "no details"
    return StreamFailed(f"an error in the middle of the reply: {text}")
