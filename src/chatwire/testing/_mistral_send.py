"""Sending a fake Mistral reply over the wire: SSE streams, JSON bodies, split writes, cut-offs.

Every event is written and drained on its own, so a client sees each piece as it is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, NoReturn

from aiohttp import web

from chatwire.testing import _mistral_replies as replies

SPLIT_WRITE_PAUSE: Final = 0.02

Writer = Callable[[bytes], Awaitable[None]]


class Halt(Enum):
    """How a faulty reply ends after its first two content pieces."""

    DROP = "drop"  # abort the TCP connection mid-body
    STALL = "stall"  # keep the connection open and send nothing more


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply, planned: what to send and how fast."""

    model: str
    pieces: list[str]
    finish_reason: str
    usage: dict[str, int]
    first_token_delay: float
    token_delay: float

    @property
    def generation_time(self) -> float:
        return self.first_token_delay + self.token_delay * max(len(self.pieces) - 1, 0)


async def forever() -> NoReturn:
    """Wait until cancelled: by the client going away (handler cancellation) or stop()."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable: the future is never resolved")


async def stream_reply(
    request: web.Request,
    reply: Reply,
    headers: Mapping[str, str],
    *,
    split_writes: bool = False,
    halt: Halt | None = None,
) -> web.StreamResponse:
    """Streams the reply as Mistral does, up to ``data: [DONE]`` unless ``halt`` is set."""
    resp = web.StreamResponse(headers={"Cache-Control": "no-cache", **headers})
    resp.content_type = "text/event-stream"
    await resp.prepare(request)
    write = split_writer(request, resp) if split_writes else plain_writer(request, resp)
    chunk_id, created = replies.new_id(), int(time.time())

    def event(
        delta: dict[str, str], finish: str | None = None, usage: dict[str, int] | None = None
    ) -> bytes:
        return replies.chunk_event(
            chunk_id=chunk_id,
            created=created,
            model=reply.model,
            delta=delta,
            finish_reason=finish,
            usage_counts=usage,
        )

    await write(event({"role": "assistant", "content": ""}))
    pieces = reply.pieces[:2] if halt is not None else reply.pieces[:-1]
    for index, piece in enumerate(pieces):
        await asyncio.sleep(reply.first_token_delay if index == 0 else reply.token_delay)
        await write(event({"content": piece}))
    if halt is not None:
        await halt_response(request, halt)
    await asyncio.sleep(reply.first_token_delay if len(reply.pieces) <= 1 else reply.token_delay)
    final = reply.pieces[-1] if reply.pieces else ""
    await write(event({"content": final}, reply.finish_reason, reply.usage))
    await write(replies.DONE_EVENT)
    await resp.write_eof()
    return resp


async def complete_reply(
    request: web.Request, reply: Reply, headers: Mapping[str, str], *, halt: Halt | None = None
) -> web.StreamResponse:
    """Answers with one ``chat.completion`` after the reply's generation time.

    With ``halt``: half of a ``Content-Length`` body at once, then a drop or a stall.
    """
    completion = replies.completion_body(
        created=int(time.time()),
        model=reply.model,
        text="".join(reply.pieces),
        finish_reason=reply.finish_reason,
        usage_counts=reply.usage,
    )
    payload = replies.compact(completion).encode()
    if halt is None:
        await asyncio.sleep(reply.generation_time)
        return web.Response(body=payload, content_type="application/json", headers=headers)
    resp = web.StreamResponse(headers=headers)
    resp.content_type = "application/json"
    resp.content_length = len(payload)
    await resp.prepare(request)
    await plain_writer(request, resp)(payload[: len(payload) // 2])
    await halt_response(request, halt)


async def halt_response(request: web.Request, halt: Halt) -> NoReturn:
    if halt is Halt.DROP and request.transport is not None:
        request.transport.abort()
    await forever()


def plain_writer(request: web.Request, resp: web.StreamResponse) -> Writer:
    async def write(data: bytes) -> None:
        await resp.write(data)
        await request.writer.drain()

    return write


def split_writer(request: web.Request, resp: web.StreamResponse) -> Writer:
    """Writes each event in two parts, cut inside a multi-byte character when it has one."""

    async def write(data: bytes) -> None:
        cut = cut_point(data)
        await resp.write(data[:cut])
        await request.writer.drain()
        await asyncio.sleep(SPLIT_WRITE_PAUSE)
        await resp.write(data[cut:])
        await request.writer.drain()

    return write


def cut_point(data: bytes) -> int:
    """Just after the lead byte of the first multi-byte UTF-8 character, else the middle."""
    for index, byte in enumerate(data):
        if byte >= 0xC0:
            return index + 1
    return len(data) // 2
