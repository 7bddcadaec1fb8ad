"""Small ASGI helpers for the routes that write straight to ``send`` (the hot path)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

import msgspec

from chatwire.errors import BodyTimeout, BodyTooLarge, ChatwireError
from chatwire.timing import Timing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_json = msgspec.json.Encoder()


class ClientGone(Exception):
    """The client disconnected while its request body was still being read."""


class Heads(NamedTuple):
    """The request headers the chat route reads, found in one pass."""

    authorization: bytes | None
    content_length: bytes | None
    request_id: bytes
    # Every Via header's entries, joined: the gateways the request came through.
    via: bytes | None = None


def read_heads(scope: Scope) -> Heads:
    authorization = length = given = via = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value
        elif key == b"content-length":
            length = value
        elif key == b"x-request-id":
            given = value
        elif key == b"via":
            via = value if via is None else via + b"," + value
    return Heads(authorization, length, request_id(given), via)


def request_id(given: bytes | None) -> bytes:
    """The client's X-Request-ID when it is a sane one (up to 64 ASCII letters, digits and
    dashes, so it can go into logs and headers as it is), else a new one."""
    if given and len(given) <= 64 and given.replace(b"-", b"").isalnum() and given.isascii():
        return given
    return secrets.token_hex(8).encode()


async def read_body(
    receive: Receive,
    limit: int,
    declared: bytes | None,
    charge: Callable[[int], None],
    within: float | None = None,
    limit_name: str = "CHATWIRE_MAX_BODY_BYTES",
) -> bytes:
    """The whole body, each piece counted by ``charge`` as it arrives; a 413 past ``limit``
    (at once when the declared length is over it) and a 408 when it has not arrived whole
    ``within`` seconds (``CHATWIRE_BODY_TIMEOUT``; None: the caller keeps the time, as the
    chat pipeline's deadline does)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, limit_name)
    if within is None:
        return await _read(receive, limit, charge, limit_name)
    try:
        async with asyncio.timeout(within):
            return await _read(receive, limit, charge, limit_name)
    except TimeoutError:
        raise BodyTimeout(
            f"The request body did not arrive within {within:g} s (CHATWIRE_BODY_TIMEOUT)."
        ) from None


async def _read(
    receive: Receive, limit: int, charge: Callable[[int], None], limit_name: str
) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False) and not parts:
            if len(body) > limit:
                raise _too_large(limit, limit_name)
            charge(len(body))
            return body
        size += len(body)
        if size > limit:
            raise _too_large(limit, limit_name)
        charge(len(body))
        parts.append(body)
        if not message.get("more_body", False):
            return b"".join(parts)


def _too_large(limit: int, limit_name: str) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {limit} bytes ({limit_name}).")


def closing(send: Send) -> Send:
    """``send`` for a response that leaves the request body unread, in part or whole: it
    closes the connection, so the rest is neither read nor waited for (on a kept-alive
    connection the server would read and drop all of it, for as long as it trickles)."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
        await send(message)

    return send_closing


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]]
) -> None:
    """A whole JSON response: ``payload`` encoded, with ``headers`` after the content ones."""
    body = _json.encode(payload)
    heads = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": heads})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: ChatwireError, rid: bytes, timing: Timing) -> None:
    headers = [(b"x-request-id", rid), timing.header(), *error.headers()]
    await send_json(send, error.status, {"message": error.message}, headers)
