"""What a chat's failure means: the one place an exception of a chat becomes the
``ChatwireError`` its dialect renders, by status and the family's structured reading of an
error body, by the kind of transport failure, never by matching message wording. Of a
user-set upstream (``Exchange.terse``) only the status is told, unless the operator asks
for more (CHATWIRE_UPSTREAM_ERROR_DETAIL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp

from chatwire.errors import (
    ChatwireError,
    InternalError,
    UpstreamError,
    UpstreamKeyInvalid,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from chatwire.gateway.lines import StreamFailed
from chatwire.providers.error_text import readable_message

if TYPE_CHECKING:
    from chatwire.gateway.upstream import Exchange, UpstreamPolicy
    from chatwire.providers.declaration import Provider

log = logging.getLogger("chatwire.upstream")

TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, StreamFailed)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` without any of ``secrets``: a provider may quote the key it was sent in an
    error, and an operator's key must not reach a user (or the logs) that way."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def error_for_status(
    provider: Provider,
    status: int,
    reason: str,
    retry_after: str | None,
    body: bytes,
    secrets: Sequence[str] = (),
    *,
    terse: bool = False,
) -> UpstreamError:
    """An upstream error response as the most specific error, by status and by the family's
    structured reading of the body; never by matching message wording. A user-set upstream
    may be anything reachable, so of its answer only the status is told."""
    if status == 401 or (not terse and provider.family.key_rejected(status, body)):
        return UpstreamKeyInvalid(provider.key_invalid_message())
    if terse:
        said = "."
    else:
        text = readable_message(body) or f"{reason or 'error'} (no readable message)"
        said = f": {redact(text, secrets)}"
    return UpstreamError(
        f"{provider.label} answered {status}{said}",
        status=status if 400 <= status <= 599 else 502,
        retry_after=retry_after if status in (429, 503, 529) else None,
    )


def failure(exc: BaseException, ex: Exchange | None, rid: bytes) -> ChatwireError:
    """The one place a chat's failure becomes the error its dialect renders."""
    if isinstance(exc, ChatwireError):
        return exc
    if ex is not None and isinstance(exc, TRANSPORT_ERRORS):
        if ex.terse:
            return terse_transport_error(ex.provider, exc, ex.policy)
        return transport_error(ex.provider, exc, ex.reading, ex.policy, ex.call.secrets())
    where = (
        f"while relaying from {ex.provider.label}" if ex is not None else "to handle this request"
    )
    log.error("request %s: failed %s", rid.decode(), where, exc_info=exc)
    return InternalError(
        f"chatwire failed {where} (request id {rid.decode()}); the server log has the details."
    )


def transport_error(
    provider: Provider,
    exc: BaseException,
    reading: bool,
    policy: UpstreamPolicy,
    secrets: Sequence[str] = (),
) -> UpstreamError:
    """An aiohttp, OS or stream failure as the most specific chatwire error."""
    label = provider.label
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(
            f"{label} could not be reached within {policy.connect:g} s "
            "(CHATWIRE_CONNECT_TIMEOUT). Try again later."
        )
    if isinstance(exc, aiohttp.SocketTimeoutError | asyncio.TimeoutError):
        if not reading:
            return _no_first_byte(label, policy)
        return UpstreamTimeout(
            f"{label} stopped sending for {policy.idle:g} s "
            "(CHATWIRE_IDLE_TIMEOUT). Try again later."
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or "connection failed"
        return UpstreamUnreachable(f"Could not connect to {label}: {reason}.")
    if isinstance(exc, StreamFailed):
        return UpstreamUnreachable(f"{label} sent a broken reply: {redact(str(exc), secrets)}")
    if isinstance(exc, aiohttp.InvalidURL):
        return UpstreamUnreachable(f"The {label} URL is not valid; check its base URL.")
    return UpstreamUnreachable(
        f"The connection to {label} failed ({type(exc).__name__}). Try again later."
    )


def terse_transport_error(
    provider: Provider, exc: BaseException, policy: UpstreamPolicy
) -> UpstreamError:
    """A user-set upstream's transport failure, told as one text per status: whether the
    port was closed, open but not HTTP, or reset must not show (a port scanner's answer)."""
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return UpstreamTimeout(
            f"{provider.label} did not answer in time (CHATWIRE_CONNECT_TIMEOUT "
            f"{policy.connect:g} s, CHATWIRE_FIRST_BYTE_TIMEOUT {policy.first_byte:g} s, "
            f"CHATWIRE_IDLE_TIMEOUT {policy.idle:g} s). Try again later."
        )
    return UpstreamUnreachable(
        f"{provider.label} gave no usable answer: check its base URL and that its server "
        "speaks the OpenAI API there."
    )


def first_byte_timeout(ex: Exchange) -> UpstreamError:
    """The reply's first piece did not come within the first-byte timeout of the first try."""
    if ex.terse:
        return terse_transport_error(ex.provider, TimeoutError(), ex.policy)
    return _no_first_byte(ex.provider.label, ex.policy)


def _no_first_byte(label: str, policy: UpstreamPolicy) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"{label} did not start answering within {policy.first_byte:g} s "
        "(CHATWIRE_FIRST_BYTE_TIMEOUT). Try again later."
    )
