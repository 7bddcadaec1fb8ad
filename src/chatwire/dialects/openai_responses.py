"""OpenAI's Responses API: ``POST /v1/responses``, for the openai SDK's ``responses``, the
Vercel AI SDK's default OpenAI provider and Codex CLI, to any provider.

The request becomes the canonical call (``responses_request``); models are named as on chat
completions (``provider/model``, or a bare id the catalogue knows). The upstream is always
asked for a stream, whatever the client asked, and the reply is built from its deltas
(``responses_reply``): streamed as OpenAI's typed events, or as one ``response`` object.

State: with ``store`` (the default), the response and the input items of its conversation
are kept in the database for the caller, written before the reply's last event (so a
client that continues at once finds it, in any process sharing the database), with its
status as it ended (completed, incomplete, or failed after the stream began).
``previous_response_id`` continues from such a row: its input and output come before the
request's input (its ``instructions`` do not carry over, as on OpenAI's API); another
user's id, an expired or unknown one, is a 404. Errors are in OpenAI's shape.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.api.asgi import Send
from chatwire.api.openai_errors import openai_error
from chatwire.dialects.base import Request
from chatwire.dialects.openai_chat import decode_body, send_json
from chatwire.dialects.responses_reply import Reply
from chatwire.dialects.responses_request import Decoded, chat_messages, decode_fields
from chatwire.errors import BodyTooLarge, ChatwireError, RequestInvalid, ResponseNotFound
from chatwire.families.base import DROP_HINT
from chatwire.gateway.call import ChatCall

if TYPE_CHECKING:
    from chatwire.gateway.lines import DeltaReader
    from chatwire.services import Services
    from chatwire.store.responses import ResponseStore
    from chatwire.timing import Timing

PATH = "/v1/responses"
# Item references one request may make (each is looked up in the database).
MAX_REFERENCES = 1000
log = logging.getLogger("chatwire.chat")


class ResponsesRequest(msgspec.Struct, forbid_unknown_fields=False):
    """The request's fields chatwire reads itself (for the OpenAPI description)."""

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None


class Turn:
    """One request's own state: what it asked, the conversation's input items once the
    stored prefix is known, and where its reply is kept."""

    __slots__ = ("call", "decoded", "items", "responses", "user_id")

    def __init__(self, decoded: Decoded, call: ChatCall) -> None:
        self.decoded = decoded
        self.call = call
        self.items = decoded.items
        self.responses: ResponseStore | None = None
        self.user_id = 0

    async def prepare(self, services: Services, user_id: int) -> None:
        decoded = self.decoded
        if decoded.unsupported and not services.settings.drop_params:
            names = ", ".join(decoded.unsupported)
            raise RequestInvalid(
                f"chatwire's Responses API does not take {names}: no provider takes them "
                f"through it; leave them out {DROP_HINT}."
            )
        if decoded.previous is not None:
            stored = await services.responses.get(user_id, decoded.previous)
            if stored is None:
                raise ResponseNotFound(
                    f"Previous response with id '{decoded.previous[:100]}' not found.",
                    param="previous_response_id",
                )
            limit = services.settings.max_body_bytes
            if stored.size > limit:
                # A continued conversation is bounded as a body is: it becomes one.
                raise BodyTooLarge(
                    f"The conversation of response '{decoded.previous[:100]}' is larger than "
                    f"{limit} bytes (CHATWIRE_MAX_BODY_BYTES): start a new one, sending the "
                    "part of it you need as input."
                )
            self.items = [*stored.input, *stored.body.get("output", ()), *decoded.items]
        if any(item["type"] == "item_reference" for item in self.items):
            self.items = await _referenced(services, user_id, self.items)
        self.call.messages = chat_messages(decoded.instructions, self.items)
        self.user_id = user_id
        if decoded.store:
            self.responses = services.responses

    async def keep(self, response: dict[str, Any]) -> None:
        """Store the response, once (a failure after it was kept changes nothing)."""
        responses, self.responses = self.responses, None
        if responses is not None:
            await responses.save(self.user_id, response, self.items)


async def _referenced(
    services: Services, user_id: int, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The items with each ``item_reference`` replaced by the stored item it names."""
    wanted = [item["id"] for item in items if item["type"] == "item_reference"]
    if len(wanted) > MAX_REFERENCES:
        raise RequestInvalid(
            f"'input' has {len(wanted)} item references; chatwire takes {MAX_REFERENCES} at most "
            "(send earlier turns by previous_response_id, or as items)."
        )
    found = await services.responses.items(user_id, wanted)
    for name in wanted:
        if name not in found:
            raise ResponseNotFound(f"Item with id '{name[:100]}' not found.", param="input")
    return [found[item["id"]] if item["type"] == "item_reference" else item for item in items]


class OpenAIResponses:
    route = PATH
    reads_text = False

    def decode(self, path: str, body: bytes) -> Request:
        fields = decode_body(body, "a Responses API request")
        model = fields.get("model")
        if not isinstance(model, str) or not model:
            raise RequestInvalid(
                "'model' is required: the model's name as /v1/models lists it (provider/model)."
            )
        decoded = decode_fields(fields)
        # Always a stream from the upstream, its usage at its end: one reading of every reply.
        call = ChatCall(
            model=model, messages=[], params=decoded.params, stream=True, include_usage=True
        )
        return Request(call, None, model, state=Turn(decoded, call))

    def output(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        request: Request,
        reader: Any,
        headers: list[tuple[bytes, bytes]],
    ) -> EventsOutput | AnswerOutput:
        turn = request.state
        assert isinstance(turn, Turn)
        head = {
            "id": f"resp_{secrets.token_hex(24)}",
            "object": "response",
            "created_at": int(time.time()),
            "model": request.name,
            "background": False,
            "error": None,
            "incomplete_details": None,
            **turn.decoded.echo,
        }
        namespaces = turn.decoded.namespaces
        if turn.decoded.stream:
            reply = Reply(head, streamed=True, namespaces=namespaces)
            return EventsOutput(send, rid, timing, turn, reader, headers, reply)
        reply = Reply(head, streamed=False, namespaces=namespaces)
        return AnswerOutput(send, rid, timing, turn, reader, headers, reply)

    async def send_error(
        self, send: Send, error: ChatwireError, rid: bytes, timing: Timing
    ) -> None:
        await send_json(send, error.status, openai_error(error), rid, timing, error.headers())


class EventsOutput:
    """The reply as the Responses API's typed server-sent events; the events of one upstream
    read go out in one write."""

    __slots__ = ("_headers", "_reader", "_reply", "_rid", "_send", "_timing", "_turn", "started")

    def __init__(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        turn: Turn,
        reader: DeltaReader,
        headers: list[tuple[bytes, bytes]],
        reply: Reply,
    ) -> None:
        self._send = send
        self._rid = rid
        self._timing = timing
        self._turn = turn
        self._reader = reader
        self._headers = headers
        self._reply = reply
        self.started = False

    async def _events(self, last: bool = False) -> None:
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
        body = b"".join(self._reply.taken())
        if body or last:
            await self._send({"type": "http.response.body", "body": body, "more_body": not last})

    def _begin(self) -> None:
        if not self.started:
            self._reply.start()

    async def write(self, chunks: list[dict[str, Any]]) -> None:
        self._begin()
        self._reply.feed(chunks)
        await self._events()

    async def end(self) -> None:
        self._begin()
        response = self._reply.complete(self._reader.usage)
        # Kept before the last event: a client that continues from it at once finds it.
        await self._turn.keep(response)
        self._reply.announce(response)
        await self._events(last=True)

    async def fail(self, error: ChatwireError) -> None:
        response = self._reply.failed(error, self._reader.usage)
        try:
            await self._turn.keep(response)
        except Exception:  # the reply has failed already: its client is told that
            log.warning("a failed response was not stored", exc_info=True)
        await self._events(last=True)


class AnswerOutput:
    """The reply as one ``response`` object, gathered from the deltas."""

    __slots__ = ("_headers", "_reader", "_reply", "_rid", "_send", "_timing", "_turn")
    started = False

    def __init__(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        turn: Turn,
        reader: DeltaReader,
        headers: list[tuple[bytes, bytes]],
        reply: Reply,
    ) -> None:
        self._send = send
        self._rid = rid
        self._timing = timing
        self._turn = turn
        self._reader = reader
        self._headers = headers
        self._reply = reply

    async def write(self, chunks: list[dict[str, Any]]) -> None:
        self._reply.feed(chunks)

    async def end(self) -> None:
        response = self._reply.complete(self._reader.usage)
        await self._turn.keep(response)
        await send_json(self._send, 200, response, self._rid, self._timing, self._headers)

    async def fail(self, error: ChatwireError) -> None:  # pragma: no cover - never started
        raise error
