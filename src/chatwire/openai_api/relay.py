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
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

from chatwire.api.asgi import Send
from chatwire.api.openai_errors import openai_error
from chatwire.errors import ChatwireError, InternalError
from chatwire.openai_api.chunks import ChunkReader
from chatwire.providers.base import Provider, StreamFailed, Timeouts, UpstreamCall
from chatwire.streaming import drain, open_upstream, read_limited
from chatwire.timing import Timing

log = logging.getLogger("chatwire.openai")

_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, StreamFailed)
_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


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
    reader: ChunkReader,
    on_sent: Callable[[], None],
) -> None:
    started = False
    phase = "first_byte"
    completion_id = f"chatcmpl-{rid.decode()}"
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
        async with open_upstream(http, provider, call, timeouts, timing) as resp:
            phase = "idle"
            head = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
            }
            async for block in resp.content.iter_any():
                for chunk in reader.feed(block):
                    await event(_encode({**head, **chunk}))
                if reader.finished:
                    break
            else:
                for chunk in reader.close():
                    await event(_encode({**head, **chunk}))
            if include_usage and reader.usage is not None:
                await event(_encode({**head, "choices": [], "usage": reader.usage}))
            await event(b"[DONE]")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            on_sent()
            await drain(resp)
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
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        for call in (message or {}).get("tool_calls") or ():
            if isinstance(call, dict):
                call.setdefault("type", "function")
    data = _encode(answer)
    headers = [*json_headers(rid, timing), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def relay_collected(
    http: aiohttp.ClientSession,
    provider: Provider,
    call: UpstreamCall,
    timeouts: Timeouts,
    send: Send,
    rid: bytes,
    timing: Timing,
    model: str,
    reader: ChunkReader,
) -> None:
    """Non-streaming, for upstreams that are always streamed: one chat.completion."""
    phase = "first_byte"
    texts: list[str] = []
    finish = None
    try:
        async with open_upstream(http, provider, call, timeouts, timing) as resp:
            phase = "idle"
            chunks: list[dict[str, Any]] = []
            async for block in resp.content.iter_any():
                chunks += reader.feed(block)
                if reader.finished:
                    break
            else:
                chunks += reader.close()
    except _TRANSPORT_ERRORS as exc:
        raise provider.transport_error(exc, phase, timeouts) from exc
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts.append(choice.get("delta", {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
    answer = {
        "id": f"chatcmpl-{rid.decode()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(texts)},
                "finish_reason": finish or "stop",
            }
        ],
        "usage": reader.usage,
    }
    data = _encode(answer)
    headers = [*json_headers(rid, timing), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})
