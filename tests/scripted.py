"""An upstream that answers every request with exactly the bytes a test scripts, on a real
socket: for faults no well-behaved server produces (a reset before the headers, a body that
is not UTF-8, a stream that ends without its end)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


class Reset:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed peer does."""


class Stall:
    """Send nothing more and keep the connection open until the client goes away."""


Step = bytes | Pause | Reset | Stall
RESET = Reset()
STALL = Stall()

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of the body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event(data: bytes) -> bytes:
    return chunk(b"data: " + data + b"\n\n")


def delta(text: str, finish: str | None = None) -> bytes:
    finish_json = "null" if finish is None else f'"{finish}"'
    text_json = text.replace("\\", "\\\\").replace('"', '\\"')
    return event(
        b'{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":'
        b'[{"index":0,"delta":{"content":"'
        + text_json.encode()
        + b'"},"finish_reason":'
        + finish_json.encode()
        + b"}]}"
    )


END = b"0\r\n\r\n"


class ScriptedUpstream:
    def __init__(self, script: Sequence[Step]) -> None:
        self.script = list(script)
        self.requests = 0
        self.open = 0
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.requests += 1
            for step in self.script:
                if isinstance(step, bytes):
                    writer.write(step)
                    await writer.drain()
                elif isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, Reset):
                    sock: socket.socket = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                else:
                    await reader.read()  # until the client closes
                    return
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()
