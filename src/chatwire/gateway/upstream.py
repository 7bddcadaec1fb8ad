"""The one upstream client: where a chat goes and how it is asked.

``open_upstream`` posts a family's ``UpstreamCall`` and yields the 200 response with the idle
timeout in force, trying again on a refusal that may pass (``UpstreamPolicy``); ``drain``
lets its connection be reused; ``DisconnectWatch`` cancels it the moment the client leaves.
``failures`` maps what goes wrong to what the client is told.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from chatwire.api.asgi import Receive
from chatwire.gateway.failures import error_for_status
from chatwire.gateway.via import via_header
from chatwire.timing import Timing

if TYPE_CHECKING:
    from chatwire.gateway.guard import AddressRules
    from chatwire.providers.declaration import Provider

log = logging.getLogger("chatwire.upstream")

MAX_ERROR_BODY = 64 * 1024
# What one stream holds of an upstream's reply while its client is slow to read: the socket's
# receive buffer (one read takes at most what it holds; the kernel doubles the figure) and
# aiohttp's read-ahead (it stops reading past twice this) stay near these, and a reply is
# relayed in pieces of at most READ_CHUNK. A client that never reads thus costs about 470 KiB
# (tests/test_memory.py) instead of 1.9 MiB: the send then waits for the client's socket, the
# upstream read waits for the send, and the upstream's socket fills.
READ_CHUNK = 2**16
RECEIVE_BUFFER = 2**16


@dataclass(frozen=True, slots=True)
class Target:
    """Where one chat goes, resolved from the provider, the caller's credentials and the
    request."""

    base_url: str
    key: str = field(repr=False)
    model: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    query: str = ""
    max_tokens: int | None = None  # the reply budget of a custom model's record
    # Set by a user (a custom model, a user's Azure endpoint), not by the operator: it may
    # reach only the addresses the operator allows, and its errors tell no more than a status.
    user_set: bool = False


# Headers that carry a provider key, in any of the providers' styles.
def upstream_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """The socket of an upstream connection (aiohttp's ``socket_factory``): its receive
    buffer bounded (``RECEIVE_BUFFER``). Loopback and a LAN keep their speed with it; a
    distant upstream's one connection is limited to about this many bytes per round trip
    (128 KiB per 50 ms is 2.6 MB/s), far above what a model streams."""
    family, kind, proto = addr_info[:3]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    return sock


_KEY_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "x-goog-api-key"})


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    url: str
    headers: Mapping[str, str] = field(repr=False)  # carries the key
    body: bytes = field(repr=False)

    def secrets(self) -> list[str]:
        """The key (and any other credential) this call sends, to keep out of messages."""
        found: list[str] = []
        for name, value in self.headers.items():
            if name.lower() in _KEY_HEADERS:
                found += [part for part in value.split() if len(part) >= 8]
        return found


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    """How long chatwire waits on an upstream, and how often it asks again before answering.

    A refusal that may pass (429, 5xx) or a connection that could not be made is tried again
    up to ``retries`` times, after ``backoff * 2**attempt`` seconds with full jitter, or after
    the upstream's own Retry-After; never once a byte of the reply has gone to the client,
    and not when the upstream asks for a longer wait than ``max_wait``.
    """

    connect: float
    first_byte: float
    idle: float
    retries: int = 0
    backoff: float = 0.5
    max_wait: float = 10.0


@dataclass(slots=True)
class Exchange:
    """One chat's upstream side: whom it asks, with what, and how far it got."""

    http: aiohttp.ClientSession
    provider: Provider
    call: UpstreamCall
    policy: UpstreamPolicy
    timing: Timing
    # The upstream answered 200 and its reply is being read (timeouts are then idle ones).
    reading: bool = False
    # A user-set URL's rules (``Target.user_set``; ``http`` then resolves through them), or
    # None for the operator's own.
    guard: AddressRules | None = None
    # How many chatwire gateways the request passed through before this one (its Via).
    hops: int = 0
    # Of its failures, tell only the status (a user-set upstream may be any service).
    terse: bool = False


@asynccontextmanager
async def open_upstream(ex: Exchange) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST the call and yield the upstream's 200 response, idle timeout in force; any
    other status raises the provider's mapped error, once the retries allowed are spent."""
    call, policy, timing = ex.call, ex.policy, ex.timing
    timing.sent = time.perf_counter()
    url = URL(call.url)
    if ex.guard is not None:
        # A name is checked by the guarded session's resolver; an address here.
        ex.guard.check_literal(url.raw_host or "")
    # Marked as chatwire's, so a chain of gateways that loops back is refused (pipeline).
    headers = {**call.headers, "Via": via_header(ex.hops)}
    for attempt in itertools.count():
        try:
            # Redirects are not followed: the key must go nowhere but the configured host.
            resp = await ex.http.post(
                url, data=_payload(call.body), headers=headers, allow_redirects=False
            )
        except aiohttp.ClientConnectorError as exc:
            # Nothing reached the upstream, so asking again cannot run the request twice;
            # a certificate or TLS failure will not pass by itself, so it is not retried.
            wait = None if isinstance(exc, _TLS_ERRORS) else retry_wait(policy, attempt, None, None)
            if wait is None:
                raise
            what = "could not be reached"
        else:
            timing.answered = time.perf_counter()
            if resp.status == 200:
                async with resp:
                    switch_to_idle_timeout(resp, policy.idle)
                    ex.reading = True
                    with _failing_when_lost(resp):
                        yield resp
                return
            async with resp:
                body = await read_limited(resp.content, MAX_ERROR_BODY)
            retry_after = resp.headers.get("Retry-After")
            wait = retry_wait(policy, attempt, resp.status, retry_after)
            if wait is None:
                raise error_for_status(
                    ex.provider,
                    resp.status,
                    resp.reason or "",
                    retry_after,
                    body,
                    call.secrets(),
                    terse=ex.terse,
                )
            what = f"answered {resp.status}"
        log.info(
            "%s %s, trying again in %.2f s (retry %d of %d)",
            ex.provider.label,
            what,
            wait,
            attempt + 1,
            policy.retries,
        )
        await asyncio.sleep(wait)


RETRIED = frozenset({429, 500, 502, 503, 504, 529})
_TLS_ERRORS = (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError)
# aiohttp warns about bytes bodies past 1 MiB (TOO_LARGE_BYTES_BODY) and wants them as a file
# object, which it writes in pieces; one per try, as a try reads it to its end.
LARGE_BODY = 2**20


def _payload(body: bytes) -> bytes | io.BytesIO:
    return io.BytesIO(body) if len(body) > LARGE_BODY else body


def retry_wait(
    policy: UpstreamPolicy, attempt: int, status: int | None, retry_after: str | None
) -> float | None:
    """Seconds to wait before asking again, or None when the failure stands."""
    if attempt >= policy.retries or (status is not None and status not in RETRIED):
        return None
    asked = retry_after_seconds(retry_after)
    if asked is not None:
        return asked if asked <= policy.max_wait else None
    return random.uniform(0, min(policy.max_wait, policy.backoff * 2**attempt))


def retry_after_seconds(retry_after: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@contextmanager
def _failing_when_lost(resp: aiohttp.ClientResponse) -> Iterator[None]:
    """The end of the connection, before the end of the body, fails the body's reader.

    aiohttp's C parser, given a broken chunked body, closes the connection without telling
    the body's reader, which then waits with no timeout at all (its read timeout is dropped
    too): the chat would hang until its client gave up. Measured with aiohttp 3.13 and 3.14.
    """
    protocol = resp.connection.protocol if resp.connection is not None else None
    closed = protocol.closed if protocol is not None else None
    if closed is None:
        yield
        return

    def lost(future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: the body's reader reports it
        if not resp.content.is_eof() and resp.content.exception() is None:
            resp.content.set_exception(aiohttp.ClientPayloadError("the connection was lost"))

    closed.add_done_callback(lost)
    try:
        yield
    finally:
        # A kept-alive connection serves many replies: no callback may outlive its own.
        closed.remove_done_callback(lost)


def switch_to_idle_timeout(resp: aiohttp.ClientResponse, idle: float) -> None:
    # The session's read timeout is the first-byte timeout; once the upstream has
    # answered, the gap allowed between two reads becomes the idle timeout.
    connection = resp.connection
    protocol = connection.protocol if connection is not None else None
    if protocol is not None:
        protocol.read_timeout = idle
        protocol.start_timeout()


async def read_limited(content: aiohttp.StreamReader, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


async def drain(resp: aiohttp.ClientResponse) -> None:
    """Read what the upstream still sends after the end of the reply (usually just the end
    of its body), so its connection can be reused; one that holds on is closed instead."""
    if resp.content.is_eof():
        return
    try:
        async with asyncio.timeout(1.0):
            while await resp.content.read(65536):
                pass
    except (aiohttp.ClientError, TimeoutError):
        resp.close()


class DisconnectWatch:
    """Cancel the current task as soon as the client goes away, in any phase.

    Call only after the request body has been read: from then on ``receive()`` yields
    nothing but ``http.disconnect``.
    """

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._done = False
        self._owner = asyncio.current_task()
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not self._done and self._owner is not None:
            self.gone = True
            self._owner.cancel()

    def close(self) -> None:
        self._done = True
        self._task.cancel()
