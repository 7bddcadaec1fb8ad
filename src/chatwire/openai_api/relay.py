"""Relay an OpenAI-compatible upstream as OpenAI server-sent events (or one JSON answer).

Chunks are re-issued under one id and the model name the client asked for; usage is taken
from wherever the provider reports it (Mistral: in its last chunk) and, when the client
asked with ``stream_options.include_usage``, sent as OpenAI does: a final chunk with empty
``choices``. Once the stream has started, a failure ends it with a ``data: {"error": ...}``
event and no ``[DONE]``, never with a clean-looking end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import msgspec

from chatwire.api.asgi import Send
from chatwire.api.openai_errors import openai_error
from chatwire.errors import ChatwireError, InternalError
from chatwire.providers.base import Provider, StreamFailed, Timeouts, UpstreamCall
from chatwire.streaming import MAX_ERROR_BODY, read_limited, switch_to_idle_timeout

log = logging.getLogger("chatwire.openai")

_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, StreamFailed)
_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class Timing:
    """Server-Timing: chatwire's own time before calling the upstream, and the upstream's."""

    __slots__ = ("answered", "arrived", "sent")

    def __init__(self) -> None:
        self.arrived = time.perf_counter()
        self.sent = self.answered = 0.0

    def header(self) -> tuple[bytes, bytes]:
        parts = []
        if self.sent:
            parts.append(f"gateway;dur={(self.sent - self.arrived) * 1000:.3f}")
        else:
            parts.append(f"gateway;dur={(time.perf_counter() - self.arrived) * 1000:.3f}")
        if self.answered:
            parts.append(f"upstream;dur={(self.answered - self.sent) * 1000:.3f}")
        return (b"server-timing", ", ".join(parts).encode())


def json_headers(rid: bytes, timing: Timing) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"x-request-id", rid), timing.header()]


async def send_openai_error(send: Send, error: ChatwireError, rid: bytes, timing: Timing) -> None:
    body = _encode(openai_error(error))
    headers = [*json_headers(rid, timing), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": headers + error.headers(),
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def relay_sse(
    http: aiohttp.ClientSession,
    provider: Provider,
    call: UpstreamCall,
    timeouts: Timeouts,
    send: Send,
    rid: bytes,
    timing: Timing,
    model: str,
    include_usage: bool,
) -> None:
    started = False
    phase = "first_byte"
    completion_id = f"chatcmpl-{rid.decode()}"
    usage: Any = None
    created = int(time.time())

    async def start() -> None:
        nonlocal started
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-request-id", rid),
            timing.header(),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        started = True

    async def event(data: bytes) -> None:
        if not started:
            await start()
        await send(
            {"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True}
        )

    try:
        timing.sent = time.perf_counter()
        async with http.post(
            call.url, data=call.body, headers=call.headers, allow_redirects=False
        ) as resp:
            timing.answered = time.perf_counter()
            if resp.status != 200:
                body = await read_limited(resp.content, MAX_ERROR_BODY)
                raise provider.error_for_status(
                    resp.status, resp.reason or "", resp.headers.get("Retry-After"), body
                )
            switch_to_idle_timeout(resp, timeouts.idle)
            phase = "idle"
            finished = False
            rest = b""
            async for block in resp.content.iter_any():
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        finished = True
                        break
                    chunk = _chunk(data)
                    if chunk.get("error") is not None:
                        raise StreamFailed(f"an error in the middle of the reply: {chunk['error']}")
                    usage = chunk.pop("usage", None) or usage
                    choices = chunk.get("choices") or []
                    if any(c.get("finish_reason") for c in choices):
                        finished = True
                    if not choices:
                        continue
                    chunk.update(id=completion_id, object="chat.completion.chunk", model=model)
                    chunk.setdefault("created", created)
                    await event(_encode(chunk))
                if finished and not rest.strip():
                    break
            if not finished:
                raise StreamFailed("the stream ended before the reply was complete")
            if include_usage and usage is not None:
                tail = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                await event(_encode(tail))
            await event(b"[DONE]")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except ChatwireError as error:
        if started:
            await _end_with_error(send, error)
            return
        raise
    except _TRANSPORT_ERRORS as exc:
        failure = provider.transport_error(exc, phase, timeouts)
        if not started:
            raise failure from exc
        log.warning(
            "request %s: %s failed mid-stream: %s", rid.decode(), provider.name, failure.message
        )
        await _end_with_error(send, failure)
    except Exception as exc:
        log.exception("request %s: relaying from %s failed", rid.decode(), provider.name)
        internal = InternalError(
            f"chatwire failed while relaying from {provider.label} (request id {rid.decode()})."
        )
        if not started:
            raise internal from exc
        await _end_with_error(send, internal)


def _chunk(data: bytes) -> dict[str, Any]:
    try:
        return _decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise StreamFailed(f"an event that is not a valid chunk ({exc})") from exc


async def _end_with_error(send: Send, error: ChatwireError) -> None:
    """After the 200: an error event, then the end, and no [DONE]."""
    body = b"data: " + _encode(openai_error(error)) + b"\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def relay_json(
    http: aiohttp.ClientSession,
    provider: Provider,
    call: UpstreamCall,
    timeouts: Timeouts,
    send: Send,
    rid: bytes,
    timing: Timing,
    model: str,
) -> None:
    """Non-streaming: the upstream's chat.completion, under the client's model name."""
    try:
        timing.sent = time.perf_counter()
        async with http.post(
            call.url, data=call.body, headers=call.headers, allow_redirects=False
        ) as resp:
            timing.answered = time.perf_counter()
            body = await read_limited(resp.content, 16 * 1024 * 1024)
            if resp.status != 200:
                raise provider.error_for_status(
                    resp.status, resp.reason or "", resp.headers.get("Retry-After"), body
                )
    except _TRANSPORT_ERRORS as exc:
        raise provider.transport_error(exc, "first_byte", timeouts) from exc
    try:
        answer = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise provider.transport_error(
            StreamFailed("an answer that is not JSON"), "idle", timeouts
        ) from exc
    answer["model"] = model
    data = _encode(answer)
    headers = [*json_headers(rid, timing), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})
