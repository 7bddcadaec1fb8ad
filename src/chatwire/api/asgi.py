"""Small ASGI helpers for the routes that write straight to ``send`` (the hot path)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

import msgspec

from chatwire.errors import BodyTooLarge, ChatwireError
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


def read_heads(scope: Scope) -> Heads:
    authorization = length = given = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value
        elif key == b"content-length":
            length = value
        elif key == b"x-request-id":
            given = value
    return Heads(authorization, length, request_id(given))


def request_id(given: bytes | None) -> bytes:
    """The client's X-Request-ID when it is a sane one (up to 64 ASCII letters, digits and
    dashes, so it can go into logs and headers as it is), else a new one."""
    if given and len(given) <= 64 and given.replace(b"-", b"").isalnum() and given.isascii():
        return given
    return secrets.token_hex(8).encode()


async def read_body(
    receive: Receive, limit: int, declared: bytes | None, charge: Callable[[int], None]
) -> bytes:
    """The whole body, each piece counted by ``charge`` as it arrives."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False) and not parts:
            if len(body) > limit:
                raise _too_large(limit)
            charge(len(body))
            return body
        size += len(body)
        if size > limit:
            raise _too_large(limit)
        charge(len(body))
        parts.append(body)
        if not message.get("more_body", False):
            return b"".join(parts)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {limit} bytes (CHATWIRE_MAX_BODY_BYTES).")


async def send_error(send: Send, error: ChatwireError, rid: bytes, timing: Timing) -> None:
    body = _json.encode({"message": error.message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid),
        timing.header(),
        *error.headers(),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
