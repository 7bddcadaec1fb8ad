"""A fake Gemini API (Google AI Studio, ``v1beta``) on real TCP, for tests and local runs.

``FakeGemini`` serves ``POST /v1beta/models/{model}:generateContent``,
``POST /v1beta/models/{model}:streamGenerateContent`` (``?alt=sse`` for server-sent events,
else a streamed JSON array) and ``GET /v1beta/models``; its base URL is
``http://127.0.0.1:PORT/v1beta``. A request is checked in this order, and the first failure
answers with Google's error body ``{"error":{"code","message","status","details"?}}``:

1. the key, from the ``x-goog-api-key`` header, else the ``key`` query parameter: none, 403
   ``PERMISSION_DENIED``; wrong, 400 ``INVALID_ARGUMENT`` "API key not valid. Please pass a
   valid API key." with an ``ErrorInfo`` detail, reason ``API_KEY_INVALID``;
2. the body, as Google's proto parser reads it (``_gemini_validate``): 400 with a
   ``BadRequest`` detail;
3. a fault model answers with its fault (``_faults``): ``fake-429`` is 429
   ``RESOURCE_EXHAUSTED`` with ``QuotaFailure``, ``Help`` and ``RetryInfo`` (retryDelay "7s")
   details and no ``Retry-After`` header; ``fake-500`` is 500 ``INTERNAL``; ``fake-503`` is
   503 ``UNAVAILABLE`` "The model is overloaded. Please try again later.";
4. a model neither in ``models`` nor a fault model: 404 ``NOT_FOUND``;
5. the request's meaning (contents present, roles ``user``/``model``, parts with data), then
   its tool turns (``_gemini_tools``: responses right after calls, as many of them, calls
   right after a user turn, Gemini 3's thought signatures): 400;
6. the reply (chunks in ``_gemini_wire``): a function call or text.

The reply is ``reply`` when given, else ``"Hello! You said: <last user text>"``, cut to
``generationConfig.maxOutputTokens`` pieces with ``finishReason: "MAX_TOKENS"``.
``expected_reply(contents)`` and ``expected_pieces`` take the request's ``contents``.
Every chunk's ``usageMetadata`` counts the reply so far; ``cached_tokens`` adds
``cachedContentTokenCount`` (counted in ``promptTokenCount`` too, as Gemini does) and
``thoughts_tokens`` adds ``thoughtsTokenCount`` (in ``totalTokenCount`` too).

Function calls (``_gemini_tools``): a request declaring functions, with a user text last and
a mode other than ``NONE``, gets one call, whole, in one chunk ending with ``STOP``;
``expected_tool_call(body)`` tells which. Thinking models (2.5 and later) sign it with a
``thoughtSignature``, kept in ``signatures``. A turn of function responses last gets the text
``"The tool said: <output>"``; ``reply`` replaces text replies only.

Embeddings (``:batchEmbedContents``, ``:embedContent``) are served as ``_gemini_embeddings``
says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, TypedDict, Unpack

from aiohttp import web

from tests.fakes import _gemini_embeddings as embeddings
from tests.fakes import _gemini_wire as wire
from tests.fakes import _send
from tests.fakes._faults import (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_MODELS,
    FAULT_STALL,
    RETRY_AFTER_SECONDS,
)
from tests.fakes._gemini_tools import (
    FunctionCall,
    new_signature,
    planned_call,
    signs_calls,
    tool_result_text,
    turn_problem,
)
from tests.fakes._gemini_validate import json_violation, parse_problems, semantic_problem
from tests.fakes._run import serve
from tests.fakes._server import FakeServer

GEMINI_MODELS: Final = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
    "gemini-3-flash-preview",
    "gemini-3.1-pro-preview",
    "gemini-1.5-pro-latest",
    "gemini-1.5-flash",
)
DEFAULT_MODELS: Final = (*GEMINI_MODELS, *FAULT_MODELS)
METHODS: Final = frozenset({"generateContent", "streamGenerateContent"})


class FakeGeminiOptions(TypedDict, total=False):
    api_key: str
    models: Iterable[str]
    reply: str | None
    first_token_delay: float
    token_delay: float
    cached_tokens: int | None
    thoughts_tokens: int | None


class FakeGemini(FakeServer):
    """A Gemini upstream on a real socket; see the module docstring for its behaviour."""

    base_path = "/v1beta"

    def __init__(
        self,
        *,
        api_key: str = "fake-gemini-key",
        models: Iterable[str] = DEFAULT_MODELS,
        reply: str | None = None,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        cached_tokens: int | None = None,
        thoughts_tokens: int | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            first_token_delay=first_token_delay,
            token_delay=token_delay,
        )
        self.signatures: list[str] = []  # the thought signatures given, in order
        self.cached_tokens = cached_tokens
        self.thoughts_tokens = thoughts_tokens
        embeddings.install(self)
        self.app.router.add_post("/v1beta/models/{model:[^/:]+}:{method:[^/:]+}", self._generate)
        self.app.router.add_get("/v1beta/models", self._models)

    def planned(self, body: Mapping[str, Any]) -> FunctionCall | None:
        """The function call a request gets, as the test set the fake (``calls_tools``,
        ``tool_arguments``), or None when it gets text."""
        call = planned_call(body) if self.calls_tools else None
        if call is not None and self.tool_arguments is not None:
            call = FunctionCall(call.name, dict(self.tool_arguments))
        return call

    def will_call_tool(self, body: Mapping[str, Any]) -> bool:
        """Whether this request (its JSON body) is answered with a function call."""
        return self.planned(body) is not None

    def expected_tool_call(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The name and args of the function call this request (its JSON body) gets.

        ValueError when the request is answered with text (see ``will_call_tool``).
        """
        call = self.planned(body)
        if call is None:
            raise ValueError(
                "this request is answered with text, not a function call: it needs function"
                " declarations, a mode other than NONE and a user text last"
            )
        return call.name, call.args

    def _reply_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        said = tool_result_text(messages)
        return said if said is not None else super()._reply_text(messages)

    def _last_user_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        for content in reversed(messages):
            if (content.get("role") or "user") == "user":
                return wire.parts_text(content)
        return ""

    def _error(
        self, code: int, message: str, details: list[dict[str, Any]] | None = None
    ) -> web.Response:
        return web.Response(
            status=code,
            text=wire.error_body(code, message, details),
            headers={"Content-Type": wire.JSON_TYPE},
        )

    def _key_refusal(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key", request.query.get("key"))
        if key is None:
            return self._error(403, wire.NO_KEY)
        if not self._key_matches(key):
            return self._error(400, wire.KEY_INVALID, wire.key_invalid_details())
        return None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        refusal = self._key_refusal(request)
        if refusal is not None:
            return refusal
        listing = {"models": [wire.model_card(model) for model in self.models]}
        return web.Response(
            text=wire.pretty(listing) + "\n", headers={"Content-Type": wire.JSON_TYPE}
        )

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body, problem = await self._record(request)
        model, method = request.match_info["model"], request.match_info["method"]
        refusal = self._key_refusal(request)
        if refusal is not None:
            return refusal
        if method not in METHODS:
            return self._error(404, "Method not found.")
        violations = [json_violation()] if problem is not None else parse_problems(body)
        if violations:
            message = "\n".join(violation["description"] for violation in violations)
            return self._error(400, message, wire.bad_request_details(violations))
        refusal = self._refusal(model, method) or self._meaning_refusal(body, model)
        if refusal is not None:
            return refusal
        if model == FAULT_STALL:
            await _send.forever()
        return await self._answer(request, model, method, body)

    def _refusal(self, model: str, method: str) -> web.Response | None:
        if model == FAULT_429:
            details = wire.quota_details(model, RETRY_AFTER_SECONDS)
            return self._error(429, wire.QUOTA, details)
        if model == FAULT_500:
            return self._error(500, wire.INTERNAL)
        if model == FAULT_503:
            return self._error(503, wire.OVERLOADED)
        if model not in self.models and model not in self.fault_models:
            return self._error(404, wire.not_found_message(model, method))
        return None

    def _meaning_refusal(self, body: dict[str, Any], model: str) -> web.Response | None:
        message = semantic_problem(body) or turn_problem(body["contents"], model)
        return None if message is None else self._error(400, message)

    async def _answer(
        self, request: web.Request, model: str, method: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        plan = self._plan(model, body["contents"], wire.max_output_tokens(body))
        call = self.planned(body)
        part: dict[str, Any] | None = None
        if call is not None:
            part = {"functionCall": {"name": call.name, "args": call.args}}
            if signs_calls(model):
                self.signatures.append(new_signature())
                part["thoughtSignature"] = self.signatures[-1]
            plan = replace(plan, pieces=[""], truncated=False)
        chunks = wire.GeminiChunks(
            model,
            wire.prompt_tokens(body),
            plan.truncated,
            part,
            cached=self.cached_tokens,
            thoughts=self.thoughts_tokens,
        )
        self.usages.append(chunks.usage)
        pieces = wire.pieces_or_empty(plan.pieces) if plan.halt is None else plan.pieces
        if method == "generateContent":
            text = "".join(plan.pieces)
            payload = wire.pretty(chunks.chunk(text, last=True, pieces=len(plan.pieces)))
            return await _send.complete(
                request,
                (payload + "\n").encode(),
                {},
                charset="UTF-8",
                delay=plan.pace.generation_time(len(plan.pieces)),
                halt=plan.halt,
            )
        framing: _send.Framing
        if request.query.get("alt") == "sse":
            resp = await _send.prepare(request, {}, "text/event-stream")
            framing = wire.SseFraming(chunks)
        else:
            resp = await _send.prepare(request, {}, "application/json", "UTF-8")
            framing = wire.ArrayFraming(chunks)
        await _send.stream(
            request,
            resp,
            framing,
            pieces,
            plan.pace,
            halt=plan.halt,
            split_writes=plan.split_writes,
        )
        self.streams_completed += 1
        return resp


def run(host: str, port: int, **options: Unpack[FakeGeminiOptions]) -> None:
    """Serve until SIGINT or SIGTERM; prints the base URL once listening."""
    serve(lambda: FakeGemini(**options), host, port)
