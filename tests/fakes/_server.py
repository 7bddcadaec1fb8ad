"""What every fake upstream shares: a real socket, request recording, counters and the reply.

``FakeServer`` listens on a real TCP socket with aiohttp. ``open_connections`` counts TCP
connections at the protocol level (``_connections``): the listening socket's protocol factory
wraps aiohttp's, so the count changes in ``connection_made`` and ``connection_lost`` themselves,
not when aiohttp's handler task ends. Idle keep-alive connections count. ``active_requests``
counts handlers still running. ``stop()`` aborts every connection and cancels every handler,
so it never hangs.

Subclasses add their routes to ``self.app`` and answer in their provider's words; the reply
text, its pieces, the pacing and the fault models (``_faults``) come from here, so every fake
sends the same text the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Final, Self

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes._connections import ConnectionCounter, CountingProtocol
from tests.fakes._faults import (
    FAULT_MODELS,
    FAULT_SLOW,
    FAULT_SPLIT_UTF8,
    HALTS,
    SLOW_TOKEN_DELAY,
    SPLIT_UTF8_REPLY,
    Halt,
)
from tests.fakes._send import Pace
from tests.fakes._text import echo, message_text, split_pieces

_SHUTDOWN_TIMEOUT: Final = 0.5


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it; ``json`` is None when the body was not JSON."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    raw: bytes
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """One reply, decided: the pieces to send, how fast, and how it ends."""

    model: str
    pieces: list[str]
    truncated: bool  # cut short by the request's output-token limit
    pace: Pace
    halt: Halt | None
    split_writes: bool


class FakeServer:
    """A fake upstream on a real socket; subclasses add their provider's routes."""

    base_path: ClassVar[str] = "/v1"
    fault_models: ClassVar[tuple[str, ...]] = FAULT_MODELS

    def __init__(
        self,
        *,
        api_key: str | None,
        models: Iterable[str],
        reply: str | None = None,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models)
        self.reply = reply
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self.requests: list[RecordedRequest] = []
        # The usage each reply reported, in the provider's words (a stream's as it stands
        # when it ends: the last counts it sent), in the order the replies began.
        self.usages: list[dict[str, Any]] = []
        self.streams_completed = 0
        # A test's say in the tool calls that follow: with ``calls_tools`` False every request
        # gets text, tools offered or not, as a model that chooses to answer;
        # ``tool_arguments`` are each call's arguments in place of those derived from the
        # tool's schema.
        self.calls_tools = True
        self.tool_arguments: dict[str, Any] | None = None
        self.base_url: str | None = None
        # Providers take bodies of many megabytes (long contexts, inline images); aiohttp's
        # default would refuse anything past 1 MiB.
        self.app = web.Application(middlewares=[self._track], client_max_size=64 * 1024 * 1024)
        self._connections = ConnectionCounter()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"  # never the key

    @property
    def open_connections(self) -> int:
        """TCP connections open to the fake right now, idle keep-alive ones included."""
        return len(self._connections)

    @property
    def active_requests(self) -> int:
        """Requests whose handler is still running (streaming, stalled or sleeping)."""
        return len(self._handlers)

    @property
    def root_url(self) -> str | None:
        """``http://host:port`` once started, without the API's base path."""
        if self.base_url is None:
            return None
        return self.base_url.removesuffix(self.base_path) if self.base_path else self.base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
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
        self.base_url = f"http://{url_host}:{bound_port}{self.base_path}"
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

    async def __aenter__(self) -> Self:
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
        """The content pieces a request with these messages gets, one per event.

        ``messages`` are in the provider's own request shape (Gemini: ``contents``).
        """
        if self.reply is not None:
            text = self.reply
        elif model == FAULT_SPLIT_UTF8:
            text = SPLIT_UTF8_REPLY
        else:
            text = self._reply_text(messages)
        pieces = split_pieces(text)
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

    def _reply_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The text a request gets when no ``reply`` is set: the echo of the last user text."""
        return echo(self._last_user_text(messages))

    def _last_user_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        for message in reversed(messages):
            if message.get("role") == "user":
                return message_text(message.get("content"))
        return ""

    def _plan(
        self, model: str, messages: Sequence[Mapping[str, Any]], max_tokens: int | None
    ) -> Plan:
        pieces = self.expected_pieces(messages, model=model)
        truncated = max_tokens is not None and max_tokens < len(pieces)
        if max_tokens is not None:
            pieces = pieces[:max_tokens]
        token_delay = self.token_delay
        if model == FAULT_SLOW:
            token_delay = max(token_delay, SLOW_TOKEN_DELAY)
        halt = HALTS.get(model) if model in self.fault_models else None
        return Plan(
            model=model,
            pieces=pieces,
            truncated=truncated,
            pace=Pace(self.first_token_delay, token_delay),
            halt=halt,
            split_writes=model == FAULT_SPLIT_UTF8,
        )

    def _key_matches(self, given: str | None) -> bool:
        if self.api_key is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.api_key.encode())

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await handler(request)
        finally:
            self._handlers.discard(task)

    async def _record(self, request: web.Request) -> tuple[Any, ValueError | None]:
        """Records the request; returns its JSON body, or why it is not JSON."""
        raw = await request.read()
        body: Any = None
        problem: ValueError | None = None
        try:
            body = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            problem = exc
        headers = {name.lower(): value for name, value in request.headers.items()}
        query = dict(request.query)
        self.requests.append(
            RecordedRequest(request.method, request.path, headers, body, raw, query)
        )
        return body, problem
