"""OpenAI's chat completions: ``POST /v1/chat/completions``, for any standard client.

Models are named ``provider/model`` (a bare id resolves through the catalogue when one
provider has it). The body is decoded once, loosely: every parameter goes to the family as
sent. The reply: ``chat.completion.chunk`` server-sent events under one id and the model name
the client asked for, or one ``chat.completion``. Usage is taken from wherever the provider
reports it and, when the client asked with ``stream_options.include_usage``, sent as OpenAI
does: a final chunk with empty ``choices``; otherwise it rides on the chunk with the finish
reason, where Mistral sends it and its own clients (the mistralai SDK) read it. Once the
stream has started, a failure ends it with a ``data: {"error": ...}`` event and no
``[DONE]``, never with a clean-looking end. Errors are in OpenAI's shape.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from chatwire.api import asgi
from chatwire.api.asgi import Send
from chatwire.api.openai_errors import openai_error
from chatwire.api.schemas import NESTED_TOO_DEEPLY
from chatwire.dialects.base import Request, completion_of
from chatwire.errors import ChatwireError, RequestInvalid
from chatwire.gateway.call import OWN_FIELDS, ChatCall
from chatwire.gateway.lines import ANY_JSON, DeltaReader
from chatwire.timing import Timing

PATH = "/v1/chat/completions"
_encode = msgspec.json.Encoder().encode


class ChatCompletionRequest(msgspec.Struct, forbid_unknown_fields=False):
    """The request's fields chatwire reads itself (for the OpenAPI description; every other
    parameter goes to the family as sent)."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class OpenAIChat:
    route = PATH
    reads_text = False

    def decode(self, path: str, body: bytes) -> Request:
        fields = decode_body(body, "a chat completion request")
        model = fields.get("model")
        if not isinstance(model, str):
            raise _invalid("str", model, "model")
        messages = fields.get("messages")
        if not isinstance(messages, list):
            raise _invalid("array", messages, "messages")
        stream = fields.get("stream", False)
        if not isinstance(stream, bool):
            raise _invalid("bool", stream, "stream")
        options = fields.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise _invalid("object", options, "stream_options")
        params = {k: v for k, v in fields.items() if k not in OWN_FIELDS and v is not None}
        call = ChatCall(
            model=model,
            messages=messages,
            params=params,
            stream=stream,
            include_usage=bool(options and options.get("include_usage")),
        )
        return Request(call, None, model)

    def output(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        request: Request,
        reader: Any,
        headers: list[tuple[bytes, bytes]],
    ) -> EventsOutput | AnswerOutput:
        if request.call.stream:
            return EventsOutput(send, rid, timing, request, reader, headers)
        return AnswerOutput(send, rid, timing, request, reader, headers)

    async def send_error(
        self, send: Send, error: ChatwireError, rid: bytes, timing: Timing
    ) -> None:
        await send_json(send, error.status, openai_error(error), rid, timing, error.headers())


def decode_body(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object body, decoded once; a 400 that says what is wrong."""
    if not body:
        raise RequestInvalid(f"The request body is empty: send {what}.")
    try:
        return ANY_JSON.decode(body)
    except msgspec.ValidationError as exc:
        raise RequestInvalid(f"Invalid request body: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RequestInvalid(f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RequestInvalid(NESTED_TOO_DEEPLY) from exc


_JSON_TYPES = {str: "str", bool: "bool", int: "int", float: "float", list: "array", dict: "object"}


def _invalid(expected: str, value: Any, field: str) -> RequestInvalid:
    if value is None:
        return RequestInvalid(f"Invalid request body: Object missing required field `{field}`")
    got = _JSON_TYPES.get(type(value), type(value).__name__)
    return RequestInvalid(
        f"Invalid request body: Expected `{expected}`, got `{got}` - at `$.{field}`"
    )


async def send_json(
    send: Send,
    status: int,
    payload: Any,
    rid: bytes,
    timing: Timing,
    extra: list[tuple[bytes, bytes]],
) -> None:
    await asgi.send_json(send, status, payload, [(b"x-request-id", rid), timing.header(), *extra])


class EventsOutput:
    """The reply as ``chat.completion.chunk`` events; the events of one upstream read go out
    at once, in one write: a write per event was the largest cost of this route.

    A reader that can (``allow_raw``, the OpenAI-compatible family's) gives a text delta of
    the reply's steady state as the provider's own ``choices`` bytes instead of a chunk: its
    event is this reply's head, encoded once, then those bytes. The client gets the same
    JSON as from encoding the chunk (the same keys in the same order, the same values),
    without the decode and encode of every delta."""

    __slots__ = (
        "_head",
        "_headers",
        "_include_usage",
        "_raw_head",
        "_reader",
        "_rid",
        "_send",
        "_timing",
        "started",
    )

    def __init__(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        request: Request,
        reader: DeltaReader,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._send = send
        self._reader = reader
        self._rid = rid
        self._timing = timing
        self._headers = headers
        self._include_usage = request.call.include_usage
        self._head = {
            "id": f"chatcmpl-{rid.decode()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.name,
        }
        self._raw_head = b""
        allow_raw = getattr(reader, "allow_raw", None)
        if allow_raw is not None:
            allow_raw()
            # The event of ``{**head, "choices": ...}``, up to the choices.
            self._raw_head = b"data: " + _encode(self._head)[:-1] + b',"choices":'
        self.started = False

    async def _events(self, payloads: list[bytes], last: bool = False) -> None:
        await self._body(b"".join([b"data: " + data + b"\n\n" for data in payloads]), last)

    async def _body(self, body: bytes, last: bool = False) -> None:
        if not self.started:
            headers = [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                (b"x-request-id", self._rid),
                self._timing.header(),
                *self._headers,
            ]
            await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            self.started = True
        await self._send({"type": "http.response.body", "body": body, "more_body": not last})

    async def write(self, chunks: list[Any]) -> None:
        head = self._raw_head
        parts: list[Any] = []
        for chunk in chunks:
            if type(chunk) is msgspec.Raw:
                parts += (head, chunk, b"}\n\n")  # a text delta's own choices
            else:
                parts += (b"data: ", self._encoded(chunk), b"\n\n")
        await self._body(b"".join(parts))

    def _encoded(self, chunk: dict[str, Any]) -> bytes:
        reader = self._reader
        usage = reader.usage
        if self._include_usage or reader.places_usage or usage is None or not _finishes(chunk):
            return _encode({**self._head, **chunk})
        return _encode({**self._head, **chunk, "usage": usage})

    async def end(self) -> None:
        tail = [b"[DONE]"]
        usage = self._reader.usage
        if self._include_usage and usage is not None:
            tail.insert(0, _encode({**self._head, "choices": [], "usage": usage}))
        await self._events(tail, last=True)

    async def fail(self, error: ChatwireError) -> None:
        # After the 200: an error event, then the end, and no [DONE].
        body = b"data: " + _encode(openai_error(error)) + b"\n\n"
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


def _finishes(chunk: dict[str, Any]) -> bool:
    return any(isinstance(c, dict) and c.get("finish_reason") for c in chunk["choices"])


class AnswerOutput:
    """The reply as one ``chat.completion``: the upstream's own (under the client's model
    name) when it answered one, else gathered from the deltas."""

    __slots__ = ("_chunks", "_headers", "_name", "_reader", "_rid", "_send", "_timing")
    started = False

    def __init__(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        request: Request,
        reader: DeltaReader,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._send = send
        self._reader = reader
        self._rid = rid
        self._timing = timing
        self._headers = headers
        self._name = request.name
        self._chunks: list[dict[str, Any]] = []

    async def write(self, chunks: list[dict[str, Any]]) -> None:
        self._chunks += chunks

    async def end(self) -> None:
        reader = self._reader
        answer = completion_of(reader)
        if answer is not None:
            answer["model"] = self._name
        else:
            message, finish = collected_message(self._chunks)
            answer = {
                "id": f"chatcmpl-{self._rid.decode()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self._name,
                "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
                "usage": reader.usage,
            }
        await send_json(self._send, 200, answer, self._rid, self._timing, self._headers)

    async def fail(self, error: ChatwireError) -> None:  # pragma: no cover - never started
        raise error


def collected_message(chunks: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """One assistant message from a reply's chunks, as OpenAI's clients gather them: text
    concatenated, each tool call by its ``index`` with its arguments concatenated; reasoning
    as ``reasoning_content`` and its signature as ``reasoning_signature``, redacted reasoning
    as the list ``reasoning_redacted``, when there are."""
    texts: list[str] = []
    thoughts: list[str] = []
    redacted: list[str] = []
    signature = None
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk["choices"]:
            change = choice.get("delta") or {}
            texts.append(change.get("content") or "")
            thoughts.append(change.get("reasoning_content") or "")
            signature = change.get("reasoning_signature") or signature
            if change.get("reasoning_redacted"):
                redacted.append(change["reasoning_redacted"])
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
    reasoning = "".join(thoughts)
    if reasoning:
        message["reasoning_content"] = reasoning
    if signature:
        message["reasoning_signature"] = signature
    if redacted:
        message["reasoning_redacted"] = redacted
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    elif message["content"] is None:
        message["content"] = ""
    return message, finish
