"""A client that writes requests byte by byte as a test wants them, over a real socket, and
reads what the server answers until it closes the connection."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import Running


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.opened = time.monotonic()

    @classmethod
    async def open(cls, server: Running) -> Raw:
        address = urlsplit(server.url)
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self, within: float = 5.0) -> bytes:
        """Everything the server sends until it closes the connection (an assertion error
        if it has not closed it within ``within`` seconds)."""
        try:
            return await asyncio.wait_for(self.reader.read(), within)
        except TimeoutError:
            raise AssertionError(f"the connection is still open after {within} s") from None

    async def response(self, within: float = 5.0) -> bytes:
        """One response with a Content-Length, the connection left open."""
        async with asyncio.timeout(within):
            heads = await self.reader.readuntil(b"\r\n\r\n")
            length = int(headers_of(heads).get("content-length", "0"))
            return heads + await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def head(
    method: str, path: str, token: str | None = None, length: int | None = None, *extra: bytes
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: chatwire"]
    if token is not None:
        lines.append(b"Authorization: Bearer " + token.encode())
    if length is not None:
        lines.append(b"Content-Length: %d" % length)
    lines += extra
    return b"\r\n".join(lines) + b"\r\n\r\n"


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def json_of(answer: bytes) -> Any:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def headers_of(answer: bytes) -> dict[str, str]:
    lines = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
