"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``,
for the anthropic SDKs, Claude Code and the agent SDKs.

The caller's chatwire token comes in ``x-api-key`` (as the SDKs send an API key) or
``Authorization: Bearer`` (an auth token); either is checked as the bearer token it is.
Models are named as on every door: ``provider/model``, a bare id the catalogue gives to one
provider, or an operator's alias (``CHATWIRE_MODEL_ALIASES``).

To a provider of the Anthropic family the body goes as sent, only its model the provider's
id, with the client's ``anthropic-version`` and ``anthropic-beta`` headers and query string;
the reply's bytes come back unchanged (thinking and its signatures, tool use, caching, beta
features all as Anthropic sends them). To any other provider the body is translated into the
canonical call (``anthropic_call``) and the canonical reply into Anthropic's events
(``anthropic_blocks``): ``message_start``, then per content block ``content_block_start``,
its deltas (``text_delta``, ``thinking_delta`` and ``signature_delta``, ``input_json_delta``)
and ``content_block_stop``, then ``message_delta`` (the stop reason and usage) and
``message_stop``; not streamed, one ``message``. A token count to another provider is
chatwire's estimate (``anthropic_call.estimate``), said so by ``chatwire-estimate: true``.

Errors are in Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``, with its
types by status; a 503 of an upstream is Anthropic's 529 ``overloaded_error``. Once a stream
has started, a failure sends an ``error`` event and ends it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from chatwire.api import asgi
from chatwire.api.asgi import Heads, Scope, Send
from chatwire.dialects import anthropic_call
from chatwire.dialects.anthropic_blocks import Blocks, message_usage
from chatwire.dialects.base import Native, Request
from chatwire.dialects.openai_chat import decode_body
from chatwire.errors import ChatwireError, RequestInvalid, UpstreamError
from chatwire.gateway.call import ChatCall
from chatwire.gateway.lines import Relay
from chatwire.timing import Timing

PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
ESTIMATE = (b"chatwire-estimate", b"true")
# The client's headers the Messages API reads, passed on to Anthropic as they came.
FORWARDED = (b"anthropic-version", b"anthropic-beta")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_encode = msgspec.json.Encoder().encode


class MessagesRequest(msgspec.Struct, forbid_unknown_fields=False):
    """The request's fields chatwire reads itself (for the OpenAPI description; the rest go
    to Anthropic as sent, or are translated for another provider)."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False


class CountTokensRequest(msgspec.Struct, forbid_unknown_fields=False):
    """A token count's fields chatwire reads itself (for the OpenAPI description)."""

    model: str
    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] | None = None


class AnthropicMessages:
    route = PATH
    reads_text = False

    def authorization(self, scope: Scope, heads: Heads) -> bytes | None:
        if heads.authorization is not None:
            return heads.authorization
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                key = value.strip()
                return b"Bearer " + key if key else None
        return None

    def decode(self, path: str, body: bytes) -> Request:
        return self.decode_native({"path": path, "headers": [], "query_string": b""}, body)

    def decode_native(self, scope: Scope, body: bytes) -> Request:
        path = scope["path"]
        counting = path == COUNT_PATH
        fields = decode_body(body, "a Messages API request")
        model = fields.get("model")
        if not isinstance(model, str) or not model:
            raise RequestInvalid("model: Field required (a string: provider/model or an id).")
        stream = fields.get("stream", False)
        if not isinstance(stream, bool):
            raise RequestInvalid("stream: Input should be a valid boolean")
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in FORWARDED:
                # A header sent twice is one list of values, as HTTP reads it.
                given, key = value.decode("latin-1"), name.decode()
                headers[key] = f"{headers[key]},{given}" if key in headers else given
        native = Native(
            family="anthropic",
            endpoint="/messages/count_tokens" if counting else "/messages",
            body=fields,
            raw=body,
            headers=headers,
            query=scope["query_string"].decode("latin-1"),
            stream=stream and not counting,
        )
        call = ChatCall(model=model, messages=[], stream=native.stream)
        return Request(call, None, model, native=native)

    def translate(self, request: Request, drop: bool) -> bool:
        native = request.native
        assert native is not None
        counting = native.endpoint != "/messages"
        anthropic_call.translate(request.call, native.body, drop, counting)
        return counting

    def output(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        request: Request,
        reader: Any,
        headers: list[tuple[bytes, bytes]],
    ) -> Any:
        native = request.native
        assert native is not None
        response = Response(send, rid, timing, headers)
        if isinstance(reader, Relay):
            return RelayedEvents(response) if native.stream else RelayedAnswer(response)
        if native.endpoint != "/messages":
            return Estimate(response, anthropic_call.estimate(native.body))
        if native.stream:
            return EventsOutput(response, request, reader)
        return MessageOutput(response, request, reader)

    async def send_error(
        self, send: Send, error: ChatwireError, rid: bytes, timing: Timing
    ) -> None:
        status, body = anthropic_error(error, rid)
        await asgi.send_json(
            send, status, body, [(b"x-request-id", rid), timing.header(), *error.headers()]
        )


def anthropic_error(error: ChatwireError, rid: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """The status and body of an error as Anthropic answers it; an upstream's 503 is its
    529 ``overloaded_error``."""
    status = error.status
    if isinstance(error, UpstreamError) and status == 503:
        status = 529
    kind = ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": error.message}}
    if rid is not None:
        body["request_id"] = rid.decode()
    return status, body


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encode({"type": kind, **data}) + b"\n\n"


class Response:
    """One response's start and bytes: its headers once, then its body."""

    __slots__ = ("_headers", "_rid", "_send", "_timing", "started")

    def __init__(
        self, send: Send, rid: bytes, timing: Timing, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._send = send
        self._rid = rid
        self._timing = timing
        self._headers = headers
        self.started = False

    @property
    def rid(self) -> bytes:
        return self._rid

    async def body(self, data: bytes, last: bool = False) -> None:
        if not self.started:
            headers = [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                (b"x-request-id", self._rid),
                self._timing.header(),
                *self._headers,
            ]
            await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            self.started = True
        await self._send({"type": "http.response.body", "body": data, "more_body": not last})

    async def whole(self, data: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        heads = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"x-request-id", self._rid),
            self._timing.header(),
            *self._headers,
            *extra,
        ]
        await self._send({"type": "http.response.start", "status": 200, "headers": heads})
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def fail(self, error: ChatwireError) -> None:
        # After the 200: Anthropic's error event, then the end.
        _, body = anthropic_error(error)
        await self.body(event("error", {"error": body["error"]}), last=True)


class RelayedEvents:
    """Anthropic's own stream, relayed byte for byte."""

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    @property
    def started(self) -> bool:
        return self._response.started

    async def write(self, data: bytes) -> None:
        await self._response.body(data)

    async def end(self) -> None:
        await self._response.body(b"", last=True)

    async def fail(self, error: ChatwireError) -> None:
        await self._response.fail(error)


class RelayedAnswer:
    """Anthropic's own answer (a message, a token count), relayed as it came."""

    __slots__ = ("_parts", "_response")
    started = False

    def __init__(self, response: Response) -> None:
        self._response = response
        self._parts: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self._parts.append(data)

    async def end(self) -> None:
        await self._response.whole(b"".join(self._parts))

    async def fail(self, error: ChatwireError) -> None:  # pragma: no cover - never started
        raise error


class Estimate:
    """A token count chatwire estimated (the provider has no count of its own)."""

    __slots__ = ("_response", "_tokens")
    started = False

    def __init__(self, response: Response, tokens: int) -> None:
        self._response = response
        self._tokens = tokens

    async def write(self, data: Any) -> None:  # pragma: no cover - no upstream
        pass

    async def end(self) -> None:
        await self._response.whole(_encode({"input_tokens": self._tokens}), (ESTIMATE,))

    async def fail(self, error: ChatwireError) -> None:  # pragma: no cover - never started
        raise error


def _message(rid: bytes, name: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": f"msg_{rid.decode()}",
        "type": "message",
        "role": "assistant",
        "model": name,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": message_usage(usage),
    }


class EventsOutput:
    """A translated reply as Anthropic's stream; the events of one upstream read go out in
    one write."""

    __slots__ = ("_blocks", "_name", "_opened", "_reader", "_response")

    def __init__(self, response: Response, request: Request, reader: Any) -> None:
        self._response = response
        self._reader = reader
        self._name = request.name
        self._blocks = Blocks()
        self._opened = False

    @property
    def started(self) -> bool:
        return self._response.started

    def _encoded(self, events: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
        out = [event(kind, data) for kind, data in events]
        if not self._opened:
            self._opened = True
            # The usage so far: the input's count where the provider tells it before the reply
            # (Gemini), else zeros; message_delta's, at the end, has every count, as
            # Anthropic's own does, and clients take its counts over these.
            usage = self._reader.usage
            message = _message(self._response.rid, self._name, usage)
            out.insert(0, event("message_start", {"message": message}))
        return out

    async def write(self, chunks: list[dict[str, Any]]) -> None:
        encoded = self._encoded(self._blocks.events(chunks))
        if encoded:
            await self._response.body(b"".join(encoded))

    async def end(self) -> None:
        blocks = self._blocks
        tail = [
            *blocks.close(),
            (
                "message_delta",
                {
                    "delta": {"stop_reason": blocks.stop_reason(), "stop_sequence": None},
                    "usage": message_usage(self._reader.usage),
                },
            ),
            ("message_stop", {}),
        ]
        await self._response.body(b"".join(self._encoded(tail)), last=True)

    async def fail(self, error: ChatwireError) -> None:
        await self._response.fail(error)


class MessageOutput:
    """A translated reply as one ``message``, gathered from the same block events."""

    __slots__ = ("_blocks", "_content", "_inputs", "_name", "_reader", "_response")
    started = False

    def __init__(self, response: Response, request: Request, reader: Any) -> None:
        self._response = response
        self._reader = reader
        self._name = request.name
        self._blocks = Blocks()
        self._content: list[dict[str, Any]] = []
        self._inputs: dict[int, list[str]] = {}  # tool_use block -> its input's pieces

    async def write(self, chunks: list[dict[str, Any]]) -> None:
        self._apply(self._blocks.events(chunks))

    def _apply(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        content = self._content
        for kind, data in events:
            if kind == "content_block_start":
                content.append(dict(data["content_block"]))
            elif kind == "content_block_delta":
                block, change = content[data["index"]], data["delta"]
                if change["type"] == "text_delta":
                    block["text"] += change["text"]
                elif change["type"] == "thinking_delta":
                    block["thinking"] += change["thinking"]
                elif change["type"] == "signature_delta":
                    block["signature"] = change["signature"]
                else:
                    self._inputs.setdefault(data["index"], []).append(change["partial_json"])
            elif kind == "content_block_stop" and data["index"] in self._inputs:
                block = content[data["index"]]
                block["input"] = _parsed(self._inputs.pop(data["index"]))

    async def end(self) -> None:
        self._apply(self._blocks.close())
        message = _message(self._response.rid, self._name)
        message["content"] = self._content
        message["stop_reason"] = self._blocks.stop_reason()
        message["usage"] = message_usage(self._reader.usage)
        await self._response.whole(_encode(message))

    async def fail(self, error: ChatwireError) -> None:  # pragma: no cover - never started
        raise error


def _parsed(pieces: list[str]) -> Any:
    try:
        return msgspec.json.decode("".join(pieces))
    except msgspec.DecodeError:
        return {}
