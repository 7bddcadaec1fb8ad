"""Relay an OpenAI-compatible upstream as OpenAI server-sent events (or one JSON answer).

Chunks are re-issued under one id and the model name the client asked for; usage is taken
from wherever the provider reports it (Mistral: in its last chunk) and, when the client
asked with ``stream_options.include_usage``, sent as OpenAI does: a final chunk with empty
``choices``; otherwise it rides on the chunk with the finish reason, where Mistral sends it
and its own clients (the mistralai SDK) read it, whichever provider answered. Once the
stream has started, a failure ends it with a ``data: {"error": ...}`` event and no
``[DONE]``, never with a clean-looking end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from chatwire.api.asgi import Send
from chatwire.api.openai_errors import openai_error
from chatwire.errors import ChatwireError, InternalError
from chatwire.openai_api.chunks import ChunkReader
from chatwire.providers.base import Provider, StreamFailed, Timeouts, UpstreamCall
from chatwire.providers.lines import DECODE_ERRORS
from chatwire.streaming import drain, open_upstream, read_limited
from chatwire.timing import Timing

log = logging.getLogger("chatwire.openai")

_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, StreamFailed)
_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(frozen=True, slots=True)
class Exchange:
    """One /v1 request's upstream call and the client it answers."""

    http: aiohttp.ClientSession
    provider: Provider
    call: UpstreamCall
    timeouts: Timeouts
    send: Send
    rid: bytes
    timing: Timing
    model: str  # the name the client asked for, echoed in every answer


async def send_json(
    send: Send,
    status: int,
    payload: Any,
    rid: bytes,
    timing: Timing,
    extra: list[tuple[bytes, bytes]],
) -> None:
    data = _encode(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"x-request-id", rid),
        timing.header(),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def send_openai_error(send: Send, error: ChatwireError, rid: bytes, timing: Timing) -> None:
    await send_json(send, error.status, openai_error(error), rid, timing, error.headers())


async def relay_sse(
    ex: Exchange, include_usage: bool, reader: ChunkReader, on_sent: Callable[[], None]
) -> None:
    started = False
    phase = "first_byte"
    send = ex.send
    head = {
        "id": f"chatcmpl-{ex.rid.decode()}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": ex.model,
    }

    async def events(payloads: list[bytes], last: bool = False) -> None:
        nonlocal started
        if not started:
            headers = [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                (b"x-request-id", ex.rid),
                ex.timing.header(),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            started = True
        body = b"".join([b"data: " + data + b"\n\n" for data in payloads])
        await send({"type": "http.response.body", "body": body, "more_body": not last})

    def encoded(chunk: dict[str, Any]) -> bytes:
        if include_usage or reader.places_usage or reader.usage is None or not _finishes(chunk):
            return _encode({**head, **chunk})
        return _encode({**head, **chunk, "usage": reader.usage})

    try:
        async with open_upstream(ex.http, ex.provider, ex.call, ex.timeouts, ex.timing) as resp:
            phase = "idle"
            # The events that arrived in one read go out at once, in one write: a write per
            # event was the largest cost of this route (see bench/README.md).
            async for block in resp.content.iter_any():
                chunks = reader.feed(block)
                if chunks:
                    await events([encoded(chunk) for chunk in chunks])
                if reader.finished:
                    break
            else:
                chunks = reader.close()
                if chunks:
                    await events([encoded(chunk) for chunk in chunks])
            tail = [b"[DONE]"]
            if include_usage and reader.usage is not None:
                tail.insert(0, _encode({**head, "choices": [], "usage": reader.usage}))
            await events(tail, last=True)
            on_sent()
            await drain(resp)
    except Exception as exc:
        error = _mapped(ex, exc, phase)
        if not started:
            if error is exc:
                raise
            raise error from exc
        if not isinstance(exc, ChatwireError):
            log.warning(
                "request %s: %s failed mid-stream: %s",
                ex.rid.decode(),
                ex.provider.name,
                error.message,
            )
        # After the 200: an error event, then the end, and no [DONE].
        event_body = b"data: " + _encode(openai_error(error)) + b"\n\n"
        await send({"type": "http.response.body", "body": event_body, "more_body": False})


def _finishes(chunk: dict[str, Any]) -> bool:
    return any(isinstance(c, dict) and c.get("finish_reason") for c in chunk["choices"])


def _mapped(ex: Exchange, exc: Exception, phase: str) -> ChatwireError:
    """The one place a /v1 relay failure becomes a chatwire error."""
    if isinstance(exc, ChatwireError):
        return exc
    if isinstance(exc, _TRANSPORT_ERRORS):
        return ex.provider.transport_error(exc, phase, ex.timeouts, ex.call.secrets())
    log.exception("request %s: relaying from %s failed", ex.rid.decode(), ex.provider.name)
    return InternalError(
        f"chatwire failed while relaying from {ex.provider.label} (request id {ex.rid.decode()})."
    )


async def relay_json(ex: Exchange) -> None:
    """Non-streaming: the upstream's chat.completion, under the client's model name."""
    phase = "first_byte"
    try:
        async with open_upstream(ex.http, ex.provider, ex.call, ex.timeouts, ex.timing) as resp:
            phase = "idle"
            body = await read_limited(resp.content, 16 * 1024 * 1024)
        answer = _decode(body)
    except DECODE_ERRORS as exc:
        broken = StreamFailed("an answer that is not JSON")
        raise ex.provider.transport_error(broken, "idle", ex.timeouts) from exc
    except ChatwireError:
        raise
    except Exception as exc:
        raise _mapped(ex, exc, phase) from exc
    answer["model"] = ex.model
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        for call in (message or {}).get("tool_calls") or ():
            if isinstance(call, dict):
                call.setdefault("type", "function")
    await send_json(ex.send, 200, answer, ex.rid, ex.timing, [])


async def relay_collected(ex: Exchange, reader: ChunkReader) -> None:
    """Non-streaming, for upstreams that are always streamed: one chat.completion."""
    phase = "first_byte"
    chunks: list[dict[str, Any]] = []
    try:
        async with open_upstream(ex.http, ex.provider, ex.call, ex.timeouts, ex.timing) as resp:
            phase = "idle"
            async for block in resp.content.iter_any():
                chunks += reader.feed(block)
                if reader.finished:
                    break
            else:
                chunks += reader.close()
    except ChatwireError:
        raise
    except Exception as exc:
        raise _mapped(ex, exc, phase) from exc
    message, finish = collected_message(chunks)
    answer = {
        "id": f"chatcmpl-{ex.rid.decode()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ex.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
        "usage": reader.usage,
    }
    await send_json(ex.send, 200, answer, ex.rid, ex.timing, [])


def collected_message(chunks: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """One assistant message from a reply's chunks, as OpenAI's clients gather them: text
    concatenated, each tool call by its ``index`` with its arguments concatenated."""
    texts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk["choices"]:
            change = choice.get("delta") or {}
            texts.append(change.get("content") or "")
            for piece in change.get("tool_calls") or ():
                call = calls.setdefault(
                    piece.get("index", 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = piece.get("id") or call["id"]
                function = piece.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    elif message["content"] is None:
        message["content"] = ""
    return message, finish
