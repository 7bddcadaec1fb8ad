"""Relay one upstream reply to the client as plain text, piece by piece.

The response is started only once the first piece of text is in hand, so every failure
before it (refused, timed out, an error status, a broken first event) still becomes a
proper error status with a readable message. After that, a failure can no longer change
the status: the response is cut without a clean end (``StreamAborted``) so the client's
reader fails instead of keeping a silently truncated reply.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from email.utils import parsedate_to_datetime

import aiohttp

from chatwire.api.asgi import Receive, Send
from chatwire.errors import ChatwireError, InternalError, StreamAborted
from chatwire.providers.base import Provider, StreamFailed, Timeouts, UpstreamCall
from chatwire.timing import Timing

log = logging.getLogger("chatwire.stream")


MAX_ERROR_BODY = 64 * 1024
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, StreamFailed)


def text_headers(request_id: bytes, timing: Timing) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"x-experimental-stream-data", b"false"),
        (b"x-accel-buffering", b"no"),
        (b"cache-control", b"no-cache"),
        (b"x-request-id", request_id),
        timing.header(),
    ]


async def relay_text(
    http: aiohttp.ClientSession,
    provider: Provider,
    call: UpstreamCall,
    timeouts: Timeouts,
    send: Send,
    request_id: bytes,
    on_sent: Callable[[], None],
    timing: Timing,
) -> None:
    """Relay the reply; ``on_sent`` is called once the client has had all of it."""
    started = False
    phase = "first_byte"

    async def start() -> None:
        nonlocal started
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": text_headers(request_id, timing),
            }
        )
        started = True

    async def emit(text: str) -> None:
        if not started:
            # Leading whitespace of the reply is trimmed, up to the first real text.
            text = text.lstrip()
            if not text:
                return
            await start()
        await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

    try:
        async with open_upstream(http, provider, call, timeouts, timing) as resp:
            phase = "idle"
            decoder = provider.adapter.decoder(provider)
            # Whatever arrived in one read is decoded and sent on at once, as one piece.
            async for block in resp.content.iter_any():
                text = decoder.feed(block)
                if text:
                    await emit(text)
                if decoder.finished:
                    break
            else:
                text = decoder.close()
                if text:
                    await emit(text)
            if not started:
                await start()
            # The reply is complete: the client gets its end now, whatever the upstream does.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            on_sent()
            await drain(resp)
    except ChatwireError:
        raise  # an error status, before anything was sent
    except _TRANSPORT_ERRORS as exc:
        error = provider.transport_error(exc, phase, timeouts, call.secrets())
        if not started:
            raise error from exc
        _log_abort(request_id, provider, error.message)
        # Not chained: the upstream's own words (a quoted key, say) stay out of the trace;
        # the failure is logged above, redacted.
        raise StreamAborted(error.message) from None
    except Exception as exc:
        # A fault in chatwire itself: logged with its traceback, never a silent end.
        log.exception("request %s: relaying from %s failed", request_id.decode(), provider.name)
        if not started:
            raise InternalError(
                f"chatwire failed while relaying from {provider.label} "
                f"(request id {request_id.decode()}); the server log has the details."
            ) from exc
        raise StreamAborted(str(exc)) from exc


def _log_abort(request_id: bytes, provider: Provider, message: str) -> None:
    log.warning(
        "request %s: %s failed after the reply started, response aborted: %s",
        request_id.decode(),
        provider.name,
        message,
    )


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


@asynccontextmanager
async def open_upstream(
    http: aiohttp.ClientSession,
    provider: Provider,
    call: UpstreamCall,
    timeouts: Timeouts,
    timing: Timing,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST the call and yield the upstream's 200 response, idle timeout in force; any
    other status raises the provider's mapped error, once the retries allowed are spent."""
    timing.sent = time.perf_counter()
    for attempt in itertools.count():
        try:
            # Redirects are not followed: the key must go nowhere but the configured host.
            resp = await http.post(
                call.url, data=_payload(call.body), headers=call.headers, allow_redirects=False
            )
        except aiohttp.ClientConnectorError as exc:
            # Nothing reached the upstream, so asking again cannot run the request twice;
            # a certificate or TLS failure will not pass by itself, so it is not retried.
            wait = (
                None if isinstance(exc, _TLS_ERRORS) else retry_wait(timeouts, attempt, None, None)
            )
            if wait is None:
                raise
            what = "could not be reached"
        else:
            timing.answered = time.perf_counter()
            if resp.status == 200:
                async with resp:
                    switch_to_idle_timeout(resp, timeouts.idle)
                    with _failing_when_lost(resp):
                        yield resp
                return
            async with resp:
                body = await read_limited(resp.content, MAX_ERROR_BODY)
            retry_after = resp.headers.get("Retry-After")
            wait = retry_wait(timeouts, attempt, resp.status, retry_after)
            if wait is None:
                raise provider.error_for_status(
                    resp.status, resp.reason or "", retry_after, body, call.secrets()
                )
            what = f"answered {resp.status}"
        log.info(
            "%s %s, trying again in %.2f s (retry %d of %d)",
            provider.label,
            what,
            wait,
            attempt + 1,
            timeouts.retries,
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
    timeouts: Timeouts, attempt: int, status: int | None, retry_after: str | None
) -> float | None:
    """Seconds to wait before asking again, or None when the failure stands."""
    if attempt >= timeouts.retries or (status is not None and status not in RETRIED):
        return None
    asked = _seconds(retry_after)
    if asked is not None:
        return asked if asked <= timeouts.max_wait else None
    return random.uniform(0, min(timeouts.max_wait, timeouts.backoff * 2**attempt))


def _seconds(retry_after: str | None) -> float | None:
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
