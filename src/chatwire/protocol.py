"""uvicorn's httptools protocol with a bound on the request head.

httptools (llhttp) and uvicorn's protocol take any number of headers of any size: a client
could stream megabytes of headers and have them all held in memory (measured: 100,000
headers, 2 MB, answered 200). uvicorn has no setting for it with httptools (h11's limit is
slower on the hot path), so the head is counted here, where the parser hands it over, and
a request past the bound is answered 431 and its connection closed.

Time and count are bounded here too, where a connection is seen before any request is:
uvicorn starts its keep-alive timer only after a response, so a client that opens a
connection and never finishes its head would hold it forever (measured: 300 such
connections kept /healthz failing for 70 s). A head must arrive whole within the head
timeout (``CHATWIRE_HEAD_TIMEOUT``), counted from its first byte, or from the connection's
start for the first one; and one client address holds at most
``CHATWIRE_MAX_CONNECTIONS_PER_CLIENT`` connections at once (``Connections``, one per server,
which uvicorn calls to make each connection's protocol).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger("chatwire.connections")

MAX_HEAD_BYTES = 64 * 1024  # the URL and every header name and value
MAX_HEADERS = 100
READ_SLACK = 64 * 1024
# How long a connection answered 408 or 431 is kept half-closed, its further bytes read and
# dropped, before it is closed (``_refuse``).
LINGER_S = 2.0


class HeadTooLarge(Exception):
    pass


class Connections:
    """The limits of one server's connections, and how many each client address holds.

    uvicorn calls it for every new connection (its ``http`` option takes a protocol class or
    any such callable); a plain object, so ``--workers`` can hand it to each worker process,
    where it counts that process's connections.
    """

    def __init__(self, head_timeout: float = 20.0, max_per_client: int = 0) -> None:
        self.head_timeout = head_timeout
        self.max_per_client = max_per_client
        self._by_client: dict[str, int] = {}

    def __call__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> BoundedHttpToolsProtocol:
        return BoundedHttpToolsProtocol(config, server_state, app_state, _loop, connections=self)

    def open(self, address: str) -> bool:
        """Count one more connection of ``address``; False past the cap (not counted)."""
        held = self._by_client.get(address, 0)
        if self.max_per_client and held >= self.max_per_client:
            return False
        self._by_client[address] = held + 1
        return True

    def close(self, address: str) -> None:
        left = self._by_client[address] - 1
        if left:
            self._by_client[address] = left
        else:
            del self._by_client[address]


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        connections: Connections | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._connections = connections if connections is not None else Connections()
        self._address: str | None = None  # counted in ``_connections`` while open
        self._head_timer: asyncio.TimerHandle | None = None
        # When the awaited head began (its first byte; the connection's start for the first
        # head), None while no head is awaited or none has begun since the last request.
        self._head_since: float | None = None
        self._head_begun = False  # a byte of the awaited head has arrived
        self._linger: asyncio.TimerHandle | None = None  # answered and closing (``_refuse``)

    _head_bytes = 0
    _header_count = 0
    _too_large = False
    # Bytes read while a head is incomplete: the parser holds a header line that has not
    # ended yet in a buffer of its own and calls on_header only at its end, so those bytes
    # are counted here, as they arrive, and checked once a read is parsed: a read in which
    # the head ended resets the count, whatever body came with it (a read is up to 256 KiB).
    _awaiting_head = True
    _raw_head = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if address is not None:
            if not self._connections.open(address):
                log.debug(
                    "%s holds %d connections, the most allowed: one more closed",
                    address,
                    self._connections.max_per_client,
                )
                transport.close()
                return
            self._address = address
        self._head_since = self.loop.time()
        self._arm_head_timer(self._head_since + self._connections.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._address is not None:
            self._connections.close(self._address)
            self._address = None
        super().connection_lost(exc)

    # The head timer is lazy: a head that begins only notes the time, and a head that ends
    # only clears it; the timer, once set, looks when it fires and sets itself again for the
    # head then awaited, if any. A kept-alive connection's requests thus cost no timer of
    # their own (a timer made and cancelled per request was a measurable share of a short
    # chat's cost).
    def _arm_head_timer(self, when: float) -> None:
        self._head_timer = self.loop.call_at(when, self._head_check)

    def _head_check(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        since = self._head_since
        if since is None:
            return  # no head awaited: the next one's first byte sets the timer again
        timeout = self._connections.head_timeout
        now = self.loop.time()
        if self.cycle is not None and not self.cycle.response_complete:
            # The next head began while this reply is still going (pipelining): its time
            # counts once the reply is done.
            self._head_since = now
            self._arm_head_timer(now + timeout)
            return
        if now < since + timeout:
            self._arm_head_timer(since + timeout)
            return
        if not self._head_begun:
            self.transport.close()  # opened and never used: nothing to answer
            return
        text = (f"Request head not received within {timeout:g} s (CHATWIRE_HEAD_TIMEOUT).").encode()
        self._refuse(b"408 Request Timeout", text)

    def _refuse(self, status: bytes, text: bytes) -> None:
        """Answers ``status`` and closes the connection the way nginx's lingering close does.
        Closing a socket that still has unread bytes makes the kernel send a reset, and a
        reset that reaches the client before it read the answer drops the answer: a client
        still sending its head (a trickled one, one past the head's bound) got a
        ConnectionResetError instead of the 408 or 431. So the answer is followed by a FIN
        (the write side shut), the client's further bytes are read and dropped, and the
        connection is closed when the client closes its side or after ``LINGER_S``."""
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(text)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + text
        )
        if self._head_timer is not None:
            # Answered: the head's time no longer runs (it would answer again, past the FIN).
            self._head_timer.cancel()
            self._head_timer = None
        if self._linger is None and self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:
            return  # answered: the rest of what the client sends is dropped
        if self._awaiting_head:
            if not self._head_begun:
                self._head_begun = True
                if self._head_since is None:
                    self._head_since = self.loop.time()
                    if self._head_timer is None:
                        self._arm_head_timer(self._head_since + self._connections.head_timeout)
            self._raw_head += len(data)
        super().data_received(data)
        if (
            self._awaiting_head
            and self._raw_head > MAX_HEAD_BYTES + READ_SLACK
            and not self.transport.is_closing()
        ):
            self._too_large = True
            self.send_400_response("")

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_begun = False
        self._head_since = None
        self._raw_head = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._header_count = 0

    # Counted inline, once per header: a method call more per header was a measurable share
    # of a short request's cost.
    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        self._header_count += 1
        if self._head_bytes > MAX_HEAD_BYTES or self._header_count > MAX_HEADERS:
            self._refuse_head()
        super().on_header(name, value)

    def _refuse_head(self) -> None:
        self._too_large = True
        # Raised inside the parser's callback: uvicorn then answers the request as malformed
        # (send_400_response, below) and closes the connection.
        raise HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        text = (
            f"Request head too large: at most {MAX_HEADERS} headers and "
            f"{MAX_HEAD_BYTES} bytes of URL and headers."
        ).encode()
        self._refuse(b"431 Request Header Fields Too Large", text)
