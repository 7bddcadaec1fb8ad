"""Sending a fake Mistral reply: its SSE framing on top of the shared sender (``_send``).

A stream is the role chunk, one chunk per piece, the last piece together with
``finish_reason`` and ``usage``, then ``data: [DONE]``. A tool call is sent whole, in one
chunk (``{"content": null, "tool_calls": [...]}``) with ``finish_reason: "tool_calls"``, as
Mistral streams it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import _mistral_replies as replies
from tests.fakes import _send
from tests.fakes._faults import Halt
from tests.fakes._send import forever

__all__ = ["Halt", "Reply", "complete_reply", "forever", "stream_reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply, planned: what to send and how fast."""

    model: str
    pieces: list[str]
    finish_reason: str
    usage: dict[str, int]
    first_token_delay: float
    token_delay: float
    # A tool call instead of text: ``pieces`` is then its arguments, as one piece.
    tool_call: dict[str, Any] | None = None

    @property
    def pace(self) -> _send.Pace:
        return _send.Pace(self.first_token_delay, self.token_delay)

    @property
    def generation_time(self) -> float:
        return self.pace.generation_time(len(self.pieces))


class _MistralFraming:
    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._chunk_id = replies.new_id()
        self._created = int(time.time())

    def _event(
        self, delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None
    ) -> bytes:
        return replies.chunk_event(
            chunk_id=self._chunk_id,
            created=self._created,
            model=self._reply.model,
            delta=delta,
            finish_reason=finish,
            usage_counts=usage,
        )

    def opening(self) -> bytes:
        return self._event({"role": "assistant", "content": ""})

    def piece(self, text: str, *, last: bool) -> bytes:
        call = self._reply.tool_call
        delta: dict[str, Any] = {"content": text} if call is None else _tool_delta(call)
        if last:
            return self._event(delta, self._reply.finish_reason, self._reply.usage)
        return self._event(delta)

    def closing(self) -> bytes:
        return replies.DONE_EVENT

    def error(self) -> bytes:
        return b""  # Mistral has no in-stream error event


def _tool_delta(call: dict[str, Any]) -> dict[str, Any]:
    return {"content": None, "tool_calls": [call]}


async def stream_reply(
    request: web.Request,
    reply: Reply,
    headers: Mapping[str, str],
    *,
    split_writes: bool = False,
    halt: Halt | None = None,
) -> web.StreamResponse:
    """Streams the reply as Mistral does, up to ``data: [DONE]`` unless ``halt`` is set."""
    resp = await _send.prepare(
        request, {"Cache-Control": "no-cache", **headers}, "text/event-stream"
    )
    # The final chunk carries the last piece, so an empty reply still sends one, empty.
    pieces = reply.pieces if halt is not None else (reply.pieces or [""])
    return await _send.stream(
        request,
        resp,
        _MistralFraming(reply),
        pieces,
        reply.pace,
        halt=halt,
        split_writes=split_writes,
    )


async def complete_reply(
    request: web.Request, reply: Reply, headers: Mapping[str, str], *, halt: Halt | None = None
) -> web.StreamResponse:
    """Answers with one ``chat.completion`` after the reply's generation time.

    With ``halt``: half of a ``Content-Length`` body at once, then a drop or a stall.
    """
    call = reply.tool_call
    completion = replies.completion_body(
        created=int(time.time()),
        model=reply.model,
        text="".join(reply.pieces) if call is None else "",
        finish_reason=reply.finish_reason,
        usage_counts=reply.usage,
        tool_calls=None if call is None else [call],
    )
    payload = replies.compact(completion).encode()
    return await _send.complete(request, payload, headers, delay=reply.generation_time, halt=halt)
