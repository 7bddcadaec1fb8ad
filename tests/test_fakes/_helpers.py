"""Reading fake upstream responses the way a client does: raw reads, as they arrive."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp


async def collect(resp: aiohttp.ClientResponse) -> tuple[list[bytes], BaseException | None]:
    """The raw chunks as they arrived, and the error that ended the body, if any."""
    chunks: list[bytes] = []
    try:
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
    except aiohttp.ClientPayloadError as exc:
        return chunks, exc
    return chunks, None


async def read_for(resp: aiohttp.ClientResponse, seconds: float) -> tuple[bytes, bool]:
    """What arrives within ``seconds``, and whether the body was still open then."""
    received: list[bytes] = []

    async def read_all() -> None:
        async for chunk in resp.content.iter_any():
            received.append(chunk)

    try:
        await asyncio.wait_for(read_all(), seconds)
    except TimeoutError:
        return b"".join(received), True
    return b"".join(received), False


def cuts_inside_characters(chunks: list[bytes]) -> list[int]:
    """Offsets where one read ended in the middle of a multi-byte UTF-8 character."""
    joined = b"".join(chunks)
    boundaries = itertools.accumulate(len(chunk) for chunk in chunks[:-1])
    return [cut for cut in boundaries if 0x80 <= joined[cut] < 0xC0]


async def arrival_gaps(resp: aiohttp.ClientResponse, marker: bytes) -> list[float]:
    """Seconds between successive reads that carry ``marker``."""
    times: list[float] = []
    async for chunk in resp.content.iter_any():
        times.extend(time.monotonic() for _ in range(chunk.count(marker)))
    return [later - earlier for earlier, later in itertools.pairwise(times)]
