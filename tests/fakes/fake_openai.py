"""A fake OpenAI-compatible chat API, with an Azure OpenAI mode, on real TCP.

One fake stands for every provider that speaks OpenAI's format (openai, groq, perplexity,
openrouter, custom). ``FakeOpenAI`` serves ``POST /v1/chat/completions`` and ``GET /v1/models``
(base URL ``http://127.0.0.1:PORT/v1``), and OpenAI's Responses API, ``POST /v1/responses``
(``_openai_responses``). A chat request is checked in this order:

1. ``Authorization: Bearer <api_key>``: none, 401 "You didn't provide an API key..." (code
   null); wrong, 401 "Incorrect API key provided: sk-****abcd..." (code ``invalid_api_key``);
2. with ``organization`` set, an ``OpenAI-Organization`` header naming another one: 401
   ``mismatched_organization`` (the header is recorded either way, in ``requests``);
3. the body: not JSON, 400; then the few checks every compatible server makes
   (``_openai_wire.validation_problem``), 400 with ``param`` and ``code``;
4. a fault model answers with its fault (``_faults``): ``fake-429`` is 429
   ``rate_limit_exceeded`` with ``retry-after: 7`` and ``x-ratelimit-*``; ``fake-500`` is 500
   ``server_error``; ``fake-503`` is 503 "The engine is currently overloaded...";
5. a model neither in ``models`` nor a fault model: 404 ``model_not_found``;
6. the reply, streamed (honouring ``stream_options.include_usage``) or one completion.

Embeddings (``POST /v1/embeddings``, and Azure's under a deployment of
``embedding_deployments``) are served as ``_openai_embeddings`` says.

Azure mode serves ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``
on the same socket (its endpoint is ``root_url``): ``api-version`` first (missing 404,
unknown 400), then the ``api-key`` header (401), then the deployment, looked up in
``deployments`` (deployment name to model; fault model names are deployments too; unknown
404 ``DeploymentNotFound``); ``model`` is not needed in the body. Every deployment called is
appended to ``deployments_called``. Azure's stream opens with its prompt-filter chunk.

The usage counts the prompt's and the reply's tokens, plus ``cached_tokens`` read from the
cache (``prompt_tokens_details.cached_tokens``, in ``prompt_tokens`` too) and
``reasoning_tokens`` (``completion_tokens_details.reasoning_tokens``, in
``completion_tokens`` too), 0 by default.

The reply is ``reply`` when given, else ``"Hello! You said: <last user text>"``, cut to
``max_completion_tokens`` (or ``max_tokens``) pieces with ``finish_reason: "length"``.

Tool calls (``_tool_calls``): a request with function ``tools``, ``tool_choice`` other than
``none`` and a user message last gets one call, of the first tool or the one ``tool_choice``
names, with arguments derived from its schema (``expected_tool_call(body)`` tells which),
in OpenAI's shape (``_openai_wire``): streamed as a first chunk with ``index``, ``id``,
``type`` and ``function.name``, then fragments of the arguments, then ``finish_reason:
"tool_calls"``. A tool message last gets the text ``"The tool said: <its content>"``. The
body checks include OpenAI's tool-message rules: a ``tool_call_id`` on every tool message,
each answering a call of the assistant message before it, every call answered (400).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, Final, TypedDict, Unpack

from aiohttp import web

from tests.fakes import _azure_wire as azure
from tests.fakes import _openai_embeddings as embeddings
from tests.fakes import _openai_wire as wire
from tests.fakes import _send
from tests.fakes._faults import (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_MODELS,
    FAULT_STALL,
    RETRY_AFTER_SECONDS,
)
from tests.fakes._openai_responses import responses
from tests.fakes._run import serve
from tests.fakes._text import compact, count_tokens, message_text
from tests.fakes._tool_calls import ToolCallingServer, argument_fragments

OPENAI_MODELS: Final = (
    "gpt-3.5-turbo",
    "gpt-4-turbo",
    "gpt-4-turbo-preview",
    "gpt-4-vision-preview",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "llama-3.1-8b-instant",
    "llama-3.3-70b-versatile",
    "sonar",
    "sonar-pro",
    "openai/gpt-4o-mini",
)
DEFAULT_MODELS: Final = (*OPENAI_MODELS, *FAULT_MODELS)
DEFAULT_DEPLOYMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "gpt-35-turbo": "gpt-35-turbo",
        "gpt-4o": "gpt-4o-2024-08-06",
        "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    }
)


class FakeOpenAIOptions(TypedDict, total=False):
    api_key: str
    models: Iterable[str]
    reply: str | None
    first_token_delay: float
    token_delay: float
    deployments: Mapping[str, str]
    organization: str | None
    cached_tokens: int
    reasoning_tokens: int


class FakeOpenAI(ToolCallingServer):
    """An OpenAI-compatible (and Azure OpenAI) upstream; see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str = "fake-openai-key",
        models: Iterable[str] = DEFAULT_MODELS,
        reply: str | None = None,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        deployments: Mapping[str, str] = DEFAULT_DEPLOYMENTS,
        organization: str | None = None,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            first_token_delay=first_token_delay,
            token_delay=token_delay,
        )
        self.deployments = dict(deployments)
        self.organization = organization
        self.cached_tokens = cached_tokens
        self.reasoning_tokens = reasoning_tokens
        self.deployments_called: list[str] = []
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/v1/responses", partial(responses, self))
        self.app.router.add_post(
            "/openai/deployments/{deployment}/chat/completions", self._azure_chat
        )
        self.embedding_deployments = dict(embeddings.EMBEDDING_DEPLOYMENTS)
        embeddings.install(self)
        self.app.router.add_route("*", "/{tail:.*}", self._unknown_route)

    def _error(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        return web.Response(
            status=status,
            text=wire.error_body(message, kind, param, code),
            content_type="application/json",
            charset="utf-8",
            headers=headers,
        )

    def _azure_error(
        self, status: int, error: tuple[str, str], headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            status=status,
            text=azure.error_body(*error),
            content_type="application/json",
            headers=headers,
        )

    def _auth_refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header.removeprefix("Bearer ").strip():
            return self._error(401, wire.NO_KEY)
        key = header.removeprefix("Bearer ").strip()
        if not self._key_matches(key):
            return self._error(401, wire.incorrect_key(key), code="invalid_api_key")
        given = request.headers.get("OpenAI-Organization")
        if self.organization is not None and given is not None and given != self.organization:
            return self._error(401, wire.MISMATCHED_ORGANIZATION, code="mismatched_organization")
        return None

    def _headers(self) -> dict[str, str]:
        headers = {
            "x-request-id": wire.request_id(),
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
            **wire.rate_limit_headers(),
        }
        if self.organization is not None:
            headers["openai-organization"] = self.organization
        return headers

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return self._error(404, f"Invalid URL ({request.method} {request.path})")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        refusal = self._auth_refusal(request)
        if refusal is not None:
            return refusal
        listing = {"object": "list", "data": [wire.model_card(model) for model in self.models]}
        return web.json_response(listing, dumps=compact)

    def _body_refusal(
        self, body: Any, problem: ValueError | None, *, model_required: bool
    ) -> web.Response | None:
        if problem is not None:
            return self._error(400, wire.BAD_JSON)
        message, param, code = wire.validation_problem(body, model_required=model_required)
        return self._error(400, message, param=param, code=code) if message else None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, problem = await self._record(request)
        refusal = self._auth_refusal(request) or self._body_refusal(
            body, problem, model_required=True
        )
        if refusal is not None:
            return refusal
        model: str = body["model"]
        refusal = self._fault_refusal(model)
        if refusal is None and model not in self.models and model not in self.fault_models:
            refusal = self._error(404, wire.model_not_found(model), code="model_not_found")
        if refusal is not None:
            return refusal
        if model == FAULT_STALL:
            await _send.forever()
        return await self._answer(request, body, model, model, azure=False)

    def _fault_refusal(self, model: str) -> web.Response | None:
        if model == FAULT_429:
            headers = {
                "retry-after": str(RETRY_AFTER_SECONDS),
                **wire.rate_limit_headers(remaining=0, reset=f"{RETRY_AFTER_SECONDS}s"),
            }
            message = wire.rate_limited(model, RETRY_AFTER_SECONDS)
            return self._error(
                429, message, "requests", code="rate_limit_exceeded", headers=headers
            )
        if model == FAULT_500:
            return self._error(500, wire.server_error(wire.request_id()), "server_error")
        if model == FAULT_503:
            return self._error(503, wire.OVERLOADED, "server_error")
        return None

    async def _azure_chat(self, request: web.Request) -> web.StreamResponse:
        body, problem = await self._record(request)
        deployment = request.match_info["deployment"]
        self.deployments_called.append(deployment)
        version = request.query.get("api-version")
        if version is None:
            return self._azure_error(404, azure.RESOURCE_NOT_FOUND)
        if version not in azure.API_VERSIONS:
            return self._azure_error(400, azure.VERSION_NOT_SUPPORTED)
        if not self._key_matches(request.headers.get("api-key")):
            return self._azure_error(401, azure.ACCESS_DENIED)
        if deployment not in self.deployments and deployment not in self.fault_models:
            return self._azure_error(404, azure.DEPLOYMENT_NOT_FOUND)
        refusal = self._body_refusal(body, problem, model_required=False)
        refusal = refusal or self._azure_fault_refusal(deployment, version)
        if refusal is not None:
            return refusal
        if deployment == FAULT_STALL:
            await _send.forever()
        model = self.deployments.get(deployment, deployment)
        return await self._answer(request, body, deployment, model, azure=True)

    def _azure_fault_refusal(self, deployment: str, version: str) -> web.Response | None:
        if deployment == FAULT_429:
            headers = {"retry-after": str(RETRY_AFTER_SECONDS)}
            throttled = azure.throttled(version, RETRY_AFTER_SECONDS)
            return self._azure_error(429, throttled, headers)
        if deployment == FAULT_500:
            return self._error(500, azure.server_error(wire.request_id()), "server_error")
        if deployment == FAULT_503:
            return self._azure_error(503, azure.UNAVAILABLE)
        return None

    async def _answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        fault: str,
        model: str,
        *,
        azure: bool,
    ) -> web.StreamResponse:
        """Replies as ``model``; ``fault`` (the model or deployment asked for) picks faults."""
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        call = self.planned(body)
        plan = self._plan(fault, body["messages"], None if call else max_tokens)
        pieces, tool_call = plan.pieces, None
        if call is not None:
            tool_call = wire.ToolCall(wire.tool_call_id(), call.name, compact(call.arguments))
            pieces = argument_fragments(tool_call.arguments)
        counts = wire.usage(
            _prompt_tokens(body["messages"]),
            len(pieces),
            cached=self.cached_tokens,
            reasoning=self.reasoning_tokens,
        )
        if body.get("stream") is not True:
            self.usages.append(counts)
            completion = wire.completion_body(
                model,
                "".join(pieces),
                truncated=plan.truncated,
                counts=counts,
                azure=azure,
                tool_call=tool_call,
            )
            return await _send.complete(
                request,
                compact(completion).encode(),
                self._headers(),
                delay=plan.pace.generation_time(len(pieces)),
                halt=plan.halt,
            )
        options = body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True
        if include_usage:
            self.usages.append(counts)
        chunks = wire.OpenAIChunks(
            model,
            counts=counts,
            truncated=plan.truncated,
            include_usage=include_usage,
            azure=azure,
            tool_call=tool_call,
        )
        headers = {"Cache-Control": "no-cache", **self._headers()}
        resp = await _send.prepare(request, headers, "text/event-stream", "utf-8")
        await _send.stream(
            request,
            resp,
            chunks,
            pieces,
            plan.pace,
            halt=plan.halt,
            split_writes=plan.split_writes,
        )
        self.streams_completed += 1
        return resp


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(
        count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict)
    )


def run(host: str, port: int, **options: Unpack[FakeOpenAIOptions]) -> None:
    """Serve until SIGINT or SIGTERM; prints the base URL once listening."""
    serve(lambda: FakeOpenAI(**options), host, port)
