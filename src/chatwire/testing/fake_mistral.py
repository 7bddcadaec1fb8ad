"""A fake Mistral chat API on real TCP, faithful to mistral-wire.md, for tests and local runs.

``FakeMistral`` serves ``POST /v1/chat/completions`` and ``GET /v1/models`` with aiohttp.
A chat request is checked in this order, and the first failure answers:

1. ``Authorization: Bearer <api_key>``, else 401;
2. the body is a JSON object with only Mistral's fields, messages with only their role's
   fields, else 422 (see ``_mistral_validate`` for the ``loc`` of each case);
3. a fault model (below) answers with its fault;
4. a model neither in ``models`` nor a fault model: 400 ``invalid_model``;
5. with more than one message, the last must be user, tool or assistant with prefix=true,
   else 400 with Mistral's message-order body;
6. the reply, streamed (``stream: true``) or as one ``chat.completion``.

Error bodies follow ``error_shape`` (0, 1 or 2; table in ``_mistral_replies``).

The reply is ``reply`` when given, else ``"Hello! You said: <last user text>"``;
``expected_reply`` and ``expected_pieces`` tell a test exactly what will be sent. It is
streamed in word pieces that keep their leading space (``split_pieces``), cut to
``max_tokens`` pieces with ``finish_reason: "length"``. ``first_token_delay`` comes before the
first content chunk, ``token_delay`` between content chunks.

Fault models (accepted whatever ``models`` says):

- ``fake-429``: 429, ``Retry-After: 7`` and the four ``x-ratelimit-*`` headers.
- ``fake-500``: 500; shape 2 sends the text ``Internal Server Error``.
- ``fake-503``: 503 ``service_unavailable``.
- ``fake-drop``: 200, the role chunk and the first two content chunks, then the TCP
  connection is aborted mid-body (no end of the chunked body, no ``[DONE]``). Not streamed:
  half of a ``Content-Length`` body, then the abort.
- ``fake-stall``: never answers, not even headers, until the client goes away or ``stop()``.
- ``fake-stall-mid``: like ``fake-drop`` but stalls instead of aborting.
- ``fake-split-utf8``: streams ``reply`` or ``SPLIT_UTF8_REPLY``, each event in two writes
  20 ms apart, cut inside its first multi-byte character (mid-event if it has none).
- ``fake-slow``: a normal reply with at least 50 ms between content chunks.

``open_connections`` counts TCP connections at the protocol level (``_connections``): the
listening socket's protocol factory wraps aiohttp's, so the count changes in
``connection_made`` and ``connection_lost`` themselves, not when aiohttp's handler task ends.
Idle keep-alive connections count. ``active_requests`` counts handlers still running.
``stop()`` aborts every connection and cancels every handler, so it never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypedDict, Unpack

from aiohttp import web
from aiohttp.typedefs import Handler

from chatwire.testing import _mistral_replies as replies
from chatwire.testing._connections import ConnectionCounter, CountingProtocol
from chatwire.testing._mistral_send import Halt, Reply, complete_reply, forever, stream_reply
from chatwire.testing._mistral_validate import ErrorEntry, json_error, validate_chat_body

FAULT_429: Final = "fake-429"
FAULT_500: Final = "fake-500"
FAULT_503: Final = "fake-503"
FAULT_DROP: Final = "fake-drop"
FAULT_STALL: Final = "fake-stall"
FAULT_STALL_MID: Final = "fake-stall-mid"
FAULT_SPLIT_UTF8: Final = "fake-split-utf8"
FAULT_SLOW: Final = "fake-slow"
FAULT_MODELS: Final = (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    FAULT_STALL,
    FAULT_STALL_MID,
    FAULT_SPLIT_UTF8,
    FAULT_SLOW,
)
DEFAULT_MODELS: Final = (*replies.CONTEXT_LENGTHS, *FAULT_MODELS)
SPLIT_UTF8_REPLY: Final = "héllo wörld — 你好 🌍 "
SLOW_TOKEN_DELAY: Final = 0.05
RETRY_AFTER_SECONDS: Final = 7
_SHUTDOWN_TIMEOUT: Final = 0.5
_HALTS: Final[Mapping[str, Halt]] = MappingProxyType(
    {FAULT_DROP: Halt.DROP, FAULT_STALL_MID: Halt.STALL}
)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it; ``json`` is None when the body was not JSON."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    raw: bytes


class FakeMistralOptions(TypedDict, total=False):
    api_key: str
    models: Iterable[str]
    reply: str | None
    first_token_delay: float
    token_delay: float
    error_shape: int


class FakeMistral:
    """A Mistral upstream on a real socket; see the module docstring for its behaviour."""

    def __init__(
        self,
        *,
        api_key: str = "fake-mistral-key",
        models: Iterable[str] = DEFAULT_MODELS,
        reply: str | None = None,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        error_shape: int = 0,
    ) -> None:
        if error_shape not in (0, 1, 2):
            raise ValueError(f"error_shape must be 0, 1 or 2, not {error_shape!r}")
        self.api_key = api_key
        self.models = tuple(models)
        self.reply = reply
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self.error_shape = error_shape
        self.requests: list[RecordedRequest] = []
        self.streams_completed = 0
        self.base_url: str | None = None
        self.app = web.Application(middlewares=[self._track])
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)
        self._connections = ConnectionCounter()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    def __repr__(self) -> str:
        return f"FakeMistral(base_url={self.base_url!r})"  # never the key

    @property
    def open_connections(self) -> int:
        """TCP connections open to the fake right now, idle keep-alive ones included."""
        return len(self._connections)

    @property
    def active_requests(self) -> int:
        """Requests whose handler is still running (streaming, stalled or sleeping)."""
        return len(self._handlers)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 picks a free port); returns the base URL, ending in /v1."""
        if self._runner is not None:
            raise RuntimeError("FakeMistral is already started")
        # handler_cancellation: a stalled handler ends as soon as its client goes away.
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        http = runner.server
        assert http is not None
        counter = self._connections
        self._runner = runner
        self._server = await asyncio.get_running_loop().create_server(
            lambda: CountingProtocol(http(), counter), host, port
        )
        bound_port = self._server.sockets[0].getsockname()[1]
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{bound_port}/v1"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening, end every connection and handler; never waits on a client."""
        runner, server = self._runner, self._server
        self._runner = self._server = None
        if server is not None:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        self._connections.abort_all()
        if runner is not None:
            await runner.cleanup()
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), _SHUTDOWN_TIMEOUT)

    async def __aenter__(self) -> FakeMistral:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_for_connections(self, count: int = 0, *, within: float = 2.0) -> None:
        """Wait until exactly ``count`` connections are open; TimeoutError after ``within`` s."""
        await self._wait(lambda: self.open_connections == count, within)

    async def wait_for_active_requests(self, count: int, *, within: float = 2.0) -> None:
        """Wait until exactly ``count`` handlers run; TimeoutError after ``within`` s."""
        await self._wait(lambda: self.active_requests == count, within)

    async def _wait(self, reached: Callable[[], bool], within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not reached():
            if loop.time() > deadline:
                raise TimeoutError(
                    f"gave up after {within}s: {self.open_connections} connections open,"
                    f" {self.active_requests} requests active"
                )
            await asyncio.sleep(0.01)

    def expected_pieces(
        self,
        messages: Sequence[Mapping[str, Any]] = (),
        *,
        model: str | None = None,
        max_tokens: int | None = None,
    ) -> list[str]:
        """The content pieces a request with these messages gets, one per chunk."""
        if self.reply is not None:
            text = self.reply
        elif model == FAULT_SPLIT_UTF8:
            text = SPLIT_UTF8_REPLY
        else:
            text = replies.echo_reply(messages)
        pieces = replies.split_pieces(text)
        return pieces if max_tokens is None else pieces[:max_tokens]

    def expected_reply(
        self,
        messages: Sequence[Mapping[str, Any]] = (),
        *,
        model: str | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """The full reply text a request with these messages gets."""
        return "".join(self.expected_pieces(messages, model=model, max_tokens=max_tokens))

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await handler(request)
        finally:
            self._handlers.discard(task)

    async def _record(self, request: web.Request) -> tuple[Any, ErrorEntry | None]:
        """Records the request; returns its JSON body, or the 422 entry when it is not JSON."""
        raw = await request.read()
        body: Any = None
        error: ErrorEntry | None = None
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            error = json_error(exc.pos, exc.msg)
        except ValueError as exc:  # bytes that are not UTF-8
            error = json_error(0, str(exc))
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, request.path, headers, body, raw))
        return body, error

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.api_key}".encode())

    def _json(
        self, status: int, body: object, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return web.json_response(body, status=status, headers=headers, dumps=replies.compact)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if not self._authorized(request):
            return self._json(401, replies.unauthorized_body(self.error_shape))
        cards = [replies.model_card(model) for model in self.models]
        return self._json(200, {"object": "list", "data": cards})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, json_problem = await self._record(request)
        if not self._authorized(request):
            return self._json(401, replies.unauthorized_body(self.error_shape))
        errors = [json_problem] if json_problem is not None else validate_chat_body(body)
        if errors:
            return self._json(422, replies.validation_body(self.error_shape, errors))
        model: str = body["model"]
        refusal = self._refusal(model, body["messages"])
        if refusal is not None:
            return refusal
        if model == FAULT_STALL:
            await forever()
        reply = self._plan(body)
        halt = _HALTS.get(model)
        if body.get("stream") is True:
            resp = await stream_reply(
                request,
                reply,
                replies.rate_limit_headers(),
                split_writes=model == FAULT_SPLIT_UTF8,
                halt=halt,
            )
            self.streams_completed += 1
            return resp
        return await complete_reply(request, reply, replies.rate_limit_headers(), halt=halt)

    def _refusal(self, model: str, messages: list[dict[str, Any]]) -> web.Response | None:
        if model == FAULT_429:
            headers = {
                "Retry-After": str(RETRY_AFTER_SECONDS),
                **replies.rate_limit_headers(remaining_requests=0),
            }
            return self._json(429, replies.rate_limit_body(self.error_shape), headers)
        if model == FAULT_500:
            error = replies.server_error_body(self.error_shape)
            if isinstance(error, str):
                return web.Response(status=500, text=error, content_type="text/plain")
            return self._json(500, error)
        if model == FAULT_503:
            return self._json(503, replies.unavailable_body())
        if model not in self.models and model not in FAULT_MODELS:
            return self._json(400, replies.invalid_model_body(model))
        last = messages[-1]
        if len(messages) > 1 and not (
            last["role"] in ("user", "tool")
            or (last["role"] == "assistant" and last.get("prefix") is True)
        ):
            return self._json(400, replies.role_order_body(last["role"]))
        return None

    def _plan(self, body: dict[str, Any]) -> Reply:
        model: str = body["model"]
        pieces = self.expected_pieces(body["messages"], model=model)
        max_tokens = body.get("max_tokens")
        finish_reason = "stop"
        if max_tokens is not None and max_tokens < len(pieces):
            pieces, finish_reason = pieces[:max_tokens], "length"
        token_delay = self.token_delay
        if model == FAULT_SLOW:
            token_delay = max(token_delay, SLOW_TOKEN_DELAY)
        return Reply(
            model=model,
            pieces=pieces,
            finish_reason=finish_reason,
            usage=replies.usage(body["messages"], len(pieces)),
            first_token_delay=self.first_token_delay,
            token_delay=token_delay,
        )


def run(host: str, port: int, **options: Unpack[FakeMistralOptions]) -> None:
    """Serve until SIGINT or SIGTERM; prints the base URL once listening."""
    asyncio.run(_serve(host, port, options))


async def _serve(host: str, port: int, options: FakeMistralOptions) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    fake = FakeMistral(**options)
    print(await fake.start(host, port), flush=True)
    try:
        await stopping.wait()
    finally:
        await fake.stop()
