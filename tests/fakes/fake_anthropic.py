"""A fake Anthropic Messages API on real TCP, for tests and local runs.

``FakeAnthropic`` serves ``POST /v1/messages``, ``POST /v1/messages/count_tokens`` and
``GET /v1/models`` (base URL ``http://127.0.0.1:PORT/v1``). Every request is recorded
(``requests``: headers, body, query), and every answer echoes the request's
``anthropic-version`` and ``anthropic-beta`` as ``x-fake-anthropic-version`` and
``x-fake-anthropic-beta``, so a test sees what reached the upstream; ``replies`` keeps the
bytes of each message reply's body as sent (a stream's events, or the one JSON body), so a
test can compare what a client received with them. A message request is checked in this order, and the first
failure answers, always as ``{"type":"error","error":{"type","message"},"request_id"}``:

1. ``x-api-key``: missing, 401 ``authentication_error`` "x-api-key header is required";
   wrong, 401 "invalid x-api-key";
2. ``anthropic-version``: missing, 400 ``invalid_request_error``
   "anthropic-version: header is required"; unknown, 400 as well;
3. the body: JSON, then Anthropic's validation (``_anthropic_validate``), 400;
4. a fault model answers with its fault (``_faults``): ``fake-429`` is 429 ``rate_limit_error``
   with ``retry-after: 7``; ``fake-500`` is 500 ``api_error``; ``fake-503`` is 529
   ``overloaded_error``; ``fake-error-mid`` streams two pieces, then ``event: error``
   (``overloaded_error``, "Overloaded") and ends the body without ``message_stop``
   (not streamed: 529);
5. a model neither in ``models`` nor a fault model: 404 ``not_found_error`` "model: <name>";
6. the reply: streamed (``stream: true``, events in ``_anthropic_wire``) or one ``message``.

The reply is ``reply`` when given, else ``"Hello! You said: <last user text>"``, cut to
``max_tokens`` pieces with ``stop_reason: "max_tokens"`` (else ``"end_turn"``);
``expected_reply(messages)`` and ``expected_pieces`` take the request's ``messages``.

The usage's ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` are the fake's
``cache_read_tokens`` and ``cache_write_tokens`` (0 by default). A request with ``thinking``
gets a signed thinking block before its text (``_anthropic_thinking``: ``thinking_of(body)``
tells which). ``count_tokens`` takes a message request's fields but ``max_tokens`` and
``stream``, and answers ``{"input_tokens": N}``, N as the message's usage would say.

Tool use (``_anthropic_tools``): a request with ``tools``, a ``tool_choice`` other than
``none`` and the user's words last gets one ``tool_use`` block, with input derived from the
tool's ``input_schema`` (``expected_tool_use(body)`` tells which, and the text said first),
and ``stop_reason: "tool_use"``; ``reply`` and ``max_tokens`` do not change it. Tool turns are
validated as Anthropic does (a result must answer a call of the message before it, each call
must be answered at the start of the next message); a request whose last message starts with
tool results gets ``"The tool said: <content>"``. A test may turn tool calls off
(``calls_tools = False``) or give every call its input (``tool_arguments``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, TypedDict, Unpack

from aiohttp import web

from tests.fakes import _anthropic_wire as wire
from tests.fakes import _send
from tests.fakes._anthropic_thinking import Thinking, thinking_of, thinking_problem
from tests.fakes._anthropic_tools import (
    ToolUse,
    planned_use,
    tool_result_reply,
    tool_use_id,
)
from tests.fakes._anthropic_validate import validate_messages_body
from tests.fakes._faults import (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_ERROR_MID,
    FAULT_MODELS,
    FAULT_STALL,
    RETRY_AFTER_SECONDS,
)
from tests.fakes._run import serve
from tests.fakes._server import FakeServer
from tests.fakes._text import compact, split_pieces

# The request's anthropic-* headers, echoed on its answer.
_ECHO: Final = web.RequestKey("echo", dict[str, str])
ANTHROPIC_MODELS: Final = (
    "claude-3-haiku-20240307",
    "claude-3-sonnet-20240229",
    "claude-3-opus-20240229",
    "claude-3-5-sonnet-20240620",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
)
ANTHROPIC_FAULT_MODELS: Final = (*FAULT_MODELS, FAULT_ERROR_MID)
DEFAULT_MODELS: Final = (*ANTHROPIC_MODELS, *ANTHROPIC_FAULT_MODELS)
# 2026-10-21: the version the anthropic SDK (2.x) sends.
API_VERSIONS: Final = frozenset({"2023-06-01", "2023-01-01", "2026-10-21"})


class FakeAnthropicOptions(TypedDict, total=False):
    api_key: str
    models: Iterable[str]
    reply: str | None
    first_token_delay: float
    token_delay: float
    cache_read_tokens: int
    cache_write_tokens: int


class FakeAnthropic(FakeServer):
    """An Anthropic upstream on a real socket; see the module docstring for its behaviour."""

    fault_models = ANTHROPIC_FAULT_MODELS

    def __init__(
        self,
        *,
        api_key: str = "fake-anthropic-key",
        models: Iterable[str] = DEFAULT_MODELS,
        reply: str | None = None,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        self.cache_read_tokens = cache_read_tokens
        self.cache_write_tokens = cache_write_tokens
        self.replies: list[bytes] = []
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            first_token_delay=first_token_delay,
            token_delay=token_delay,
        )
        self.app.middlewares.append(self._echo)
        self.app.router.add_post("/v1/messages", self._messages)
        self.app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_route("*", "/{tail:.*}", self._unknown_route)

    def planned_use(self, body: Mapping[str, Any]) -> ToolUse | None:
        """The tool call a (valid) Messages API body gets, as the test set the fake
        (``calls_tools``, ``tool_arguments``), or None when it gets text."""
        use = planned_use(body) if self.calls_tools else None
        if use is not None and self.tool_arguments is not None:
            use = replace(use, input=dict(self.tool_arguments))
        return use

    def will_call_tool(self, body: Mapping[str, Any]) -> bool:
        """Whether this Messages API body is answered with a tool call."""
        return self.planned_use(body) is not None

    def expected_tool_use(self, body: Mapping[str, Any]) -> ToolUse:
        """The tool call this Messages API body gets: the text said first, name and input.

        ValueError when the body is answered with text (see ``will_call_tool``).
        """
        use = self.planned_use(body)
        if use is None:
            raise ValueError(
                "this request is answered with text, not a tool call: it needs tools, a"
                " tool_choice other than none and the user's words last"
            )
        return use

    def expected_tool_call(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The name and input of the tool call this Messages API body gets."""
        use = self.expected_tool_use(body)
        return use.name, use.input

    def thinking_of(self, body: Mapping[str, Any]) -> Thinking | None:
        """The thinking block this Messages API body gets, or None."""
        return thinking_of(body)

    def _reply_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        said = tool_result_reply(messages)
        return said if said is not None else super()._reply_text(messages)

    def _error(
        self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        retry = status in (429, 500, 529)
        return web.json_response(
            wire.error_body(kind, message),
            status=status,
            headers={"x-should-retry": str(retry).lower(), **(headers or {})},
            dumps=compact,
        )

    @web.middleware
    async def _echo(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # Set before the handler runs: a streamed answer sends its headers from inside it.
        request[_ECHO] = {
            f"x-fake-{name}": request.headers[name]
            for name in ("anthropic-version", "anthropic-beta")
            if name in request.headers
        }
        response: web.StreamResponse = await handler(request)
        if not response.prepared:
            response.headers.update(request[_ECHO])
        return response

    def _gate(self, request: web.Request) -> web.Response | None:
        """The checks every route makes first: the key, then the API version."""
        key = request.headers.get("x-api-key")
        if key is None:
            return self._error(401, "authentication_error", "x-api-key header is required")
        if not self._key_matches(key):
            return self._error(401, "authentication_error", "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if version is None:
            return self._error(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        if version not in API_VERSIONS:
            message = f"anthropic-version: {version!r} is not a valid version"
            return self._error(400, "invalid_request_error", message)
        return None

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return self._error(404, "not_found_error", "Not Found")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        refusal = self._gate(request)
        if refusal is not None:
            return refusal
        cards = [wire.model_card(model) for model in self.models]
        listing = {
            "data": cards,
            "has_more": False,
            "first_id": cards[0]["id"] if cards else None,
            "last_id": cards[-1]["id"] if cards else None,
        }
        return web.json_response(listing, dumps=compact)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, problem = await self._record(request)
        refusal = self._gate(request)
        if refusal is not None:
            return refusal
        invalid: str | None = _NOT_JSON
        if problem is None:
            invalid = validate_messages_body(body) or thinking_problem(body)
        if invalid is not None:
            return self._error(400, "invalid_request_error", invalid)
        model: str = body["model"]
        streamed = body.get("stream") is True
        refusal = self._refusal(model, streamed)
        if refusal is not None:
            return refusal
        if model == FAULT_STALL:
            await _send.forever()
        return await self._answer(request, body, streamed)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, problem = await self._record(request)
        refusal = self._gate(request)
        if refusal is not None:
            return refusal
        invalid = _count_problem(body) if problem is None else _NOT_JSON
        if invalid is not None:
            return self._error(400, "invalid_request_error", invalid)
        refusal = self._refusal(body["model"], False)
        if refusal is not None:
            return refusal
        counted = {"input_tokens": wire.input_tokens(body)}
        return web.json_response(counted, headers=request[_ECHO], dumps=compact)

    def _refusal(self, model: str, streamed: bool) -> web.Response | None:
        if model == FAULT_429:
            headers = {
                "retry-after": str(RETRY_AFTER_SECONDS),
                **wire.rate_limit_headers(remaining=0),
            }
            return self._error(429, "rate_limit_error", wire.RATE_LIMITED_MESSAGE, headers)
        if model == FAULT_500:
            return self._error(500, "api_error", "Internal server error")
        if model == FAULT_503 or (model == FAULT_ERROR_MID and not streamed):
            return self._error(529, *wire.OVERLOADED)
        if model not in self.models and model not in self.fault_models:
            return self._error(404, "not_found_error", f"model: {model}")
        return None

    async def _answer(
        self, request: web.Request, body: dict[str, Any], streamed: bool
    ) -> web.StreamResponse:
        model: str = body["model"]
        use = self.planned_use(body)
        plan = self._plan(model, body["messages"], None if use else body["max_tokens"])
        block: dict[str, Any] | None = None
        input_pieces: list[str] = []
        text = "".join(plan.pieces)
        if use is not None:
            block = {"type": "tool_use", "id": tool_use_id(), "name": use.name, "input": use.input}
            input_pieces = use.input_pieces()
            text = use.preamble
            plan = replace(plan, pieces=[*split_pieces(text), *input_pieces])
        prompt_tokens = wire.input_tokens(body)
        usage = wire.start_usage(prompt_tokens, self.cache_write_tokens, self.cache_read_tokens)
        thinking = thinking_of(body)
        output_tokens = len(plan.pieces) + (len(thinking.pieces()) if thinking else 0)
        self.usages.append({**usage, "output_tokens": output_tokens})
        echo: dict[str, str] = request[_ECHO]
        headers = {"request-id": wire.request_id(), **wire.rate_limit_headers(), **echo}
        if streamed:
            resp = await _send.prepare(
                request, {"Cache-Control": "no-cache", **headers}, "text/event-stream", "utf-8"
            )
            framing = wire.AnthropicFraming(
                model,
                prompt_tokens,
                plan.pieces,
                plan.truncated,
                block,
                len(input_pieces),
                thinking=thinking,
                usage=usage,
            )
            sent: list[bytes] = []
            self.replies.append(b"")
            await _send.stream(
                request,
                resp,
                _Recorded(framing, sent, self.replies),
                plan.pieces,
                plan.pace,
                halt=plan.halt,
                split_writes=plan.split_writes,
            )
            if plan.halt is None:
                self.streams_completed += 1
            return resp
        usage["output_tokens"] = output_tokens
        message = wire.message_body(
            msg_id=wire.message_id(),
            model=model,
            text=text,
            stop_reason="tool_use" if block else "max_tokens" if plan.truncated else "end_turn",
            usage=usage,
            tool_use=block,
            thinking=thinking,
        )
        payload = compact(message).encode()
        self.replies.append(payload)
        return await _send.complete(
            request,
            payload,
            headers,
            delay=plan.pace.generation_time(len(plan.pieces)),
            halt=plan.halt,
        )


class _Recorded:
    """A framing whose bytes are also kept, the reply so far as the last of ``replies``."""

    def __init__(self, framing: wire.AnthropicFraming, sent: list[bytes], replies: list[bytes]):
        self._framing = framing
        self._sent = sent
        self._replies = replies
        self._index = len(replies) - 1

    def _kept(self, data: bytes) -> bytes:
        self._sent.append(data)
        self._replies[self._index] = b"".join(self._sent)
        return data

    def opening(self) -> bytes:
        return self._kept(self._framing.opening())

    def piece(self, text: str, *, last: bool) -> bytes:
        return self._kept(self._framing.piece(text, last=last))

    def closing(self) -> bytes:
        return self._kept(self._framing.closing())

    def error(self) -> bytes:
        return self._kept(self._framing.error())


_NOT_JSON: Final = "There was an error parsing the body of your request as JSON."
# count_tokens takes a message request without these; a budget no thinking reaches stands in.
_NOT_COUNTED: Final = ("max_tokens", "stream")


def _count_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return validate_messages_body(body)
    extra = next((name for name in _NOT_COUNTED if name in body), None)
    if extra is not None:
        return f"{extra}: Extra inputs are not permitted"
    counted = {**body, "max_tokens": 2**20}
    return validate_messages_body(counted) or thinking_problem(counted)


def run(host: str, port: int, **options: Unpack[FakeAnthropicOptions]) -> None:
    """Serve until SIGINT or SIGTERM; prints the base URL once listening."""
    serve(lambda: FakeAnthropic(**options), host, port)
