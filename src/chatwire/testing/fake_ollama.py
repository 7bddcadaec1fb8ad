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
5. an empty ``messages`` list: one ``done_reason: "load"`` object (the model is loaded);
6. the reply: NDJSON lines (``stream`` defaults to true) or one object.

The reply is ``reply`` when given, else ``"Hello! You said: <last user text>"``, cut to
``options.num_predict`` pieces with ``done_reason: "length"`` (else ``"stop"``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Final, TypedDict, Unpack

from aiohttp import web

from chatwire.testing import _ollama_wire as wire
from chatwire.testing import _send
from chatwire.testing._faults import (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_ERROR_MID,
    FAULT_MODELS,
    FAULT_STALL,
)
from chatwire.testing._run import serve
from chatwire.testing._server import FakeServer

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
VERSION: Final = "0.12.6"


def canonical(model: str) -> str:
    """Ollama's model reference: a name without a tag means ``:latest``."""
    return model if ":" in model else f"{model}:latest"


class FakeOllamaOptions(TypedDict, total=False):
    api_key: str | None
    models: Iterable[str]
    reply: str | None
    first_token_delay: float
    token_delay: float


class FakeOllama(FakeServer):
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
    ) -> None:
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            first_token_delay=first_token_delay,
            token_delay=token_delay,
        )
        self.app.router.add_post("/api/chat", self._chat)
        self.app.router.add_get("/api/tags", self._tags)
        self.app.router.add_get("/api/version", self._version)
        self.app.router.add_get("/", self._root)
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
            return self._error(400, wire.decode_problem(await request.read(), problem))
        type_problem = wire.type_problem(body)
        if type_problem is not None:
            return self._error(400, type_problem)
        if not body.get("model"):
            return self._error(400, "model is required")
        model: str = body["model"]
        streamed = body.get("stream") is not False
        refusal = self._refusal(model, streamed)
        if refusal is not None:
            return refusal
        if not body.get("messages"):
            return self._json(200, wire.load_object(model))
        if model.removesuffix(":latest") == FAULT_STALL:
            await _send.forever()
        return await self._answer(request, body, streamed, started_ns)

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
        plan = self._plan(model.removesuffix(":latest"), body["messages"], max_tokens)
        reason = "length" if plan.truncated else "stop"
        prompt = wire.prompt_tokens(body["messages"])
        if not streamed:
            if plan.halt is None:
                await asyncio.sleep(plan.pace.generation_time(len(plan.pieces)))
            final = wire.final_object(
                model,
                "".join(plan.pieces),
                reason=reason,
                started_ns=started_ns,
                prompt=prompt,
                output=len(plan.pieces),
            )
            payload = wire.go_json(final).encode()
            return await _send.complete(request, payload, {}, charset="utf-8", halt=plan.halt)
        resp = await _send.prepare(request, {}, "application/x-ndjson")
        framing = wire.NdjsonFraming(model, prompt, len(plan.pieces), reason, started_ns)
        await _send.stream(
            request,
            resp,
            framing,
            plan.pieces,
            plan.pace,
            halt=plan.halt,
            split_writes=plan.split_writes,
        )
        if plan.halt is None:
            self.streams_completed += 1
        return resp


def run(host: str, port: int, **options: Unpack[FakeOllamaOptions]) -> None:
    """Serve until SIGINT or SIGTERM; prints the base URL once listening."""
    serve(lambda: FakeOllama(**options), host, port)
