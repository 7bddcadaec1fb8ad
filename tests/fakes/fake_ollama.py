"""A fake Ollama server on real TCP, for tests and local runs.

``FakeOllama`` serves ``POST /api/chat``, ``GET /api/tags``, ``GET /api/version`` and ``GET /``
("Ollama is running"); its base URL is ``http://127.0.0.1:PORT``. Ollama has no keys: with
``api_key=None`` (the default) every request is served; with a key, the fake stands for an
authenticating proxy or ollama.com and wants ``Authorization: Bearer <key>`` (401
``{"error":"unauthorized"}``). A chat is checked in this order, errors ``{"error":"<text>"}``:

1. the body decodes as a ``ChatRequest`` (``encoding/json``'s words: "missing request body",
   "json: cannot unmarshal string into Go struct field ChatRequest.messages of type
   []api.Message", "illegal base64 data at input byte N" for images), else 400;
2. ``model`` is set, else 400 "model is required";
3. a fault model answers with its fault (``_faults``): ``fake-500`` is 500 with a runner
   crash; ``fake-503`` is 503 "server busy, please try again.  maximum pending requests
   exceeded"; ``fake-error-mid`` streams two pieces then an ``{"error":...}`` line (not
   streamed: 500). Ollama never rate limits, so ``fake-429`` is not a fault model here;
4. a model not in ``models`` (``name`` means ``name:latest``): 404
   ``model "<name>" not found, try pulling it first``;
5. ``tools`` for a model that cannot take them (``gemma3``, ``llava``): 400
   ``registry.ollama.ai/library/<model:tag> does not support tools``;
6. an empty ``messages`` list: one ``done_reason: "load"`` object (the model is loaded);
7. the reply: NDJSON lines (``stream`` defaults to true) or one object: a tool call or text.

The reply is ``reply`` when given, else ``"Hello! You said: <last user text>"``, cut to
``options.num_predict`` pieces with ``done_reason: "length"`` (else ``"stop"``).

Tool calls (``_tool_calls``): a request with function ``tools`` and a user message last gets
one call, of the first tool, with arguments derived from its schema (``expected_tool_call``
tells which). Ollama has no ``tool_choice``, so the fake ignores one, as Ollama does. As
Ollama sends it (``_ollama_wire``): the whole call in one ``done: false`` line with empty
content, then the ``done: true`` line with ``done_reason: "stop"`` and the arguments' token
count; not streamed, ``message.tool_calls`` in the one object. Each call has an id
(``call_`` and 8 letters and digits, listed in ``call_ids`` as sent) and an index, as since
Ollama 0.12.10; ``tool_call_ids=False`` sends them as earlier versions did, without either.
A request with ``think: true`` gets its thinking first, in lines of ``message.thinking``
(``_ollama_wire.thinking_of`` tells which). A tool message last gets the text ``"The tool
said: <its content>"``. Ollama does not check
that tool results answer earlier calls, and neither does the fake (``_ollama_validate``).

Embeddings (``POST /api/embed``) are served as ``_ollama_embeddings`` says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypedDict, Unpack

from aiohttp import web

from tests.fakes import _ollama_embeddings as embeddings
from tests.fakes import _ollama_validate as validate
from tests.fakes import _ollama_wire as wire
from tests.fakes import _send
from tests.fakes._faults import (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_ERROR_MID,
    FAULT_MODELS,
    FAULT_STALL,
)
from tests.fakes._run import serve
from tests.fakes._text import count_tokens, split_pieces
from tests.fakes._tool_calls import ToolCall, ToolCallingServer

OLLAMA_MODELS: Final = (
    "llama3.2:latest",
    "llama3.1:8b",
    "mistral:latest",
    "qwen2.5:7b",
    "gemma3:latest",
    "llava:latest",
)
OLLAMA_FAULT_MODELS: Final = (
    *(fault for fault in FAULT_MODELS if fault != FAULT_429),
    FAULT_ERROR_MID,
)
DEFAULT_MODELS: Final = (*OLLAMA_MODELS, *OLLAMA_FAULT_MODELS)
VERSION: Final = "0.12.10"


def canonical(model: str) -> str:
    """Ollama's model reference: a name without a tag means ``:latest``."""
    return model if ":" in model else f"{model}:latest"


class FakeOllamaOptions(TypedDict, total=False):
    api_key: str | None
    models: Iterable[str]
    reply: str | None
    first_token_delay: float
    token_delay: float
    tool_call_ids: bool


class FakeOllama(ToolCallingServer):
    """An Ollama server on a real socket; see the module docstring for its behaviour."""

    base_path = ""
    fault_models = OLLAMA_FAULT_MODELS

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Iterable[str] = DEFAULT_MODELS,
        reply: str | None = None,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        tool_call_ids: bool = True,
    ) -> None:
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            first_token_delay=first_token_delay,
            token_delay=token_delay,
        )
        self.tool_call_ids = tool_call_ids
        self.call_ids: list[str] = []
        self.app.router.add_post("/api/chat", self._chat)
        self.app.router.add_get("/api/tags", self._tags)
        self.app.router.add_get("/api/version", self._version)
        self.app.router.add_get("/", self._root)
        self.embedding_models = list(embeddings.EMBEDDING_MODELS)
        embeddings.install(self)
        self.app.router.add_route("*", "/{tail:.*}", self._unknown_route)

    def _error(self, status: int, message: str) -> web.Response:
        return self._json(status, {"error": message})

    def _json(self, status: int, body: object) -> web.Response:
        return web.Response(
            status=status, text=wire.go_json(body), content_type="application/json", charset="utf-8"
        )

    def _auth_refusal(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return None if self._key_matches(given) else self._error(401, "unauthorized")

    async def _root(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text="Ollama is running")

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(status=404, text="404 page not found")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return self._json(200, {"version": VERSION})

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        refusal = self._auth_refusal(request)
        if refusal is not None:
            return refusal
        return self._json(200, {"models": [wire.model_tag(model) for model in self.models]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started_ns = time.monotonic_ns()
        body, problem = await self._record(request)
        refusal = self._auth_refusal(request)
        if refusal is not None:
            return refusal
        if problem is not None:
            return self._error(400, validate.decode_problem(await request.read(), problem))
        type_problem = validate.type_problem(body)
        if type_problem is not None:
            return self._error(400, type_problem)
        if not body.get("model"):
            return self._error(400, "model is required")
        model: str = body["model"]
        streamed = body.get("stream") is not False
        refusal = self._refusal(model, streamed)
        if refusal is not None:
            return refusal
        no_tools = validate.tools_refusal(model, body)
        if no_tools is not None:
            return self._error(400, no_tools)
        if not body.get("messages"):
            return self._json(200, wire.load_object(model))
        if model.removesuffix(":latest") == FAULT_STALL:
            await _send.forever()
        return await self._answer(request, body, streamed, started_ns)

    def will_call_tool(self, request: Mapping[str, Any]) -> bool:
        return super().will_call_tool(_without_choice(request))

    def expected_tool_call(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        return super().expected_tool_call(_without_choice(request))

    def _refusal(self, model: str, streamed: bool) -> web.Response | None:
        fault = model.removesuffix(":latest")
        if fault == FAULT_500 or (fault == FAULT_ERROR_MID and not streamed):
            return self._error(500, wire.RUNNER_CRASHED)
        if fault == FAULT_503:
            return self._error(503, wire.SERVER_BUSY)
        known = {canonical(name) for name in (*self.models, *self.fault_models)}
        if canonical(model) not in known:
            return self._error(404, f'model "{model}" not found, try pulling it first')
        return None

    async def _answer(
        self, request: web.Request, body: dict[str, Any], streamed: bool, started_ns: int
    ) -> web.StreamResponse:
        model: str = body["model"]
        options = body.get("options") or {}
        limit = options.get("num_predict")
        max_tokens = int(limit) if isinstance(limit, int | float) and limit >= 0 else None
        call = self.planned(_without_choice(body))
        plan = self._plan(
            model.removesuffix(":latest"), body["messages"], None if call else max_tokens
        )
        reason = "length" if plan.truncated else "stop"
        prompt = wire.prompt_tokens(body["messages"])
        pieces, tool_calls, output = plan.pieces, None, len(plan.pieces)
        if call is not None:
            pieces, tool_calls = self._tool_call(call)
            output = count_tokens(pieces[0])
        thinking = wire.thinking_of(body)
        if thinking is not None:
            output += count_tokens(thinking)
        self.usages.append({"prompt_eval_count": prompt, "eval_count": output})
        if not streamed:
            if plan.halt is None:
                await asyncio.sleep(plan.pace.generation_time(len(pieces)))
            final = wire.final_object(
                model,
                "" if tool_calls else "".join(pieces),
                reason=reason,
                started_ns=started_ns,
                prompt=prompt,
                output=output,
                tool_calls=tool_calls,
                thinking=thinking,
            )
            payload = wire.go_json(final).encode()
            return await _send.complete(request, payload, {}, charset="utf-8", halt=plan.halt)
        resp = await _send.prepare(request, {}, "application/x-ndjson")
        framing = wire.NdjsonFraming(
            model,
            prompt,
            output,
            reason,
            started_ns,
            tool_calls,
            split_pieces(thinking) if thinking is not None else (),
        )
        await _send.stream(
            request,
            resp,
            framing,
            pieces,
            plan.pace,
            halt=plan.halt,
            split_writes=plan.split_writes,
        )
        if plan.halt is None:
            self.streams_completed += 1
        return resp

    def _tool_call(self, call: ToolCall) -> tuple[list[str], list[dict[str, Any]]]:
        """The reply's one piece (the arguments, for the token count) and its one call."""
        call_id = wire.new_call_id() if self.tool_call_ids else None
        if call_id is not None:
            self.call_ids.append(call_id)
        arguments = wire.go_json(call.arguments)
        return [arguments], [wire.tool_call(call.name, call.arguments, index=0, call_id=call_id)]


def _without_choice(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as Ollama reads it: it has no ``tool_choice``."""
    return {key: value for key, value in request.items() if key != "tool_choice"}


def run(host: str, port: int, **options: Unpack[FakeOllamaOptions]) -> None:
    """Serve until SIGINT or SIGTERM; prints the base URL once listening."""
    serve(lambda: FakeOllama(**options), host, port)
