"""Sending a fake reply over the wire, whatever the provider's framing.

A ``Framing`` turns the reply into bytes (SSE events, NDJSON lines, a JSON array); ``stream``
paces those writes and applies the fault models: split writes, a drop, a stall or an
in-stream error after the first two pieces. Every write is drained on its own, so a client
sees each piece as it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NoReturn, Protocol

from aiohttp import web

from tests.fakes._faults import Halt

SPLIT_WRITE_PAUSE: Final = 0.02

Writer = Callable[[bytes], Awaitable[None]]


class Framing(Protocol):
    """One provider's stream format; empty bytes mean "nothing to write"."""

    def opening(self) -> bytes: ...

    def piece(self, text: str, *, last: bool) -> bytes: ...

    def closing(self) -> bytes: ...

    def error(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast a reply comes: before the first piece, and between pieces."""

    first_token_delay: float
    token_delay: float

    def before(self, index: int) -> float:
        return self.first_token_delay if index == 0 else self.token_delay

    def generation_time(self, pieces: int) -> float:
        return self.first_token_delay + self.token_delay * max(pieces - 1, 0)


async def forever() -> NoReturn:
    """Wait until cancelled: by the client going away (handler cancellation) or stop()."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable: the future is never resolved")


async def prepare(
    request: web.Request,
    headers: Mapping[str, str],
    content_type: str,
    charset: str | None = None,
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={**headers, "Content-Type": _type(content_type, charset)})
    await resp.prepare(request)
    return resp


def _type(content_type: str, charset: str | None) -> str:
    """The Content-Type header as given: aiohttp would lower-case the charset."""
    return content_type if charset is None else f"{content_type}; charset={charset}"


async def stream(
    request: web.Request,
    resp: web.StreamResponse,
    framing: Framing,
    pieces: Sequence[str],
    pace: Pace,
    *,
    halt: Halt | None = None,
    split_writes: bool = False,
) -> web.StreamResponse:
    """Writes the opening, each piece after its delay, and the closing, on a prepared response.

    With ``halt``, only the first two pieces go out (none of them marked last), then the halt.
    """
    write = split_writer(request, resp) if split_writes else plain_writer(request, resp)
    await _write_nonempty(write, framing.opening())
    sent = pieces[:2] if halt is not None else pieces
    for index, text in enumerate(sent):
        await asyncio.sleep(pace.before(index))
        await write(framing.piece(text, last=halt is None and index == len(pieces) - 1))
    if halt is Halt.ERROR:
        await write(framing.error())
    elif halt is not None:
        await halt_response(request, halt)
    else:
        await _write_nonempty(write, framing.closing())
    await resp.write_eof()
    return resp


async def complete(
    request: web.Request,
    payload: bytes,
    headers: Mapping[str, str],
    *,
    content_type: str = "application/json",
    charset: str | None = None,
    delay: float = 0.0,
    halt: Halt | None = None,
) -> web.StreamResponse:
    """Answers with one body after ``delay``.

    With a drop or stall: half of a ``Content-Length`` body at once, then the halt.
    """
    if halt not in (Halt.DROP, Halt.STALL):
        await asyncio.sleep(delay)
        if charset is None:
            return web.Response(body=payload, content_type=content_type, headers=headers)
        return web.Response(
            body=payload, headers={**headers, "Content-Type": _type(content_type, charset)}
        )
    half = web.StreamResponse(headers={**headers, "Content-Type": _type(content_type, charset)})
    half.content_length = len(payload)
    await half.prepare(request)
    await plain_writer(request, half)(payload[: len(payload) // 2])
    await halt_response(request, halt)


async def halt_response(request: web.Request, halt: Halt) -> NoReturn:
    if halt is Halt.DROP and request.transport is not None:
        request.transport.abort()
    await forever()


async def _write_nonempty(write: Writer, data: bytes) -> None:
    if data:
        await write(data)


def plain_writer(request: web.Request, resp: web.StreamResponse) -> Writer:
    async def write(data: bytes) -> None:
        await resp.write(data)
        await request.writer.drain()

    return write


def split_writer(request: web.Request, resp: web.StreamResponse) -> Writer:
    """Writes each part in two, cut inside a multi-byte character when it has one."""

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
