"""Counting the TCP connections open to a test server, at the protocol level.

aiohttp's own bookkeeping drops a connection only once its handler task has finished, so a
handler that is slow to notice a lost client would keep it counted. Wrapping the protocol
counts in ``connection_made`` and ``connection_lost`` themselves.
"""

from __future__ import annotations

import asyncio


class ConnectionCounter:
    """The TCP transports currently open."""

    def __init__(self) -> None:
        self._open: set[asyncio.BaseTransport] = set()

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, transport: asyncio.BaseTransport) -> None:
        self._open.add(transport)

    def closed(self, transport: asyncio.BaseTransport) -> None:
        self._open.discard(transport)

    def abort_all(self) -> None:
        """Drop every connection at once, without waiting for the peers."""
        for transport in list(self._open):
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()


class CountingProtocol(asyncio.Protocol):
    """Passes every event to the wrapped protocol, counting the connection on the way."""

    def __init__(self, inner: asyncio.Protocol, counter: ConnectionCounter) -> None:
        self._inner = inner
        self._counter = counter
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._counter.opened(transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._counter.closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
