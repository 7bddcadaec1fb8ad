"""The fake Gemini's embeddings: ``POST /v1beta/models/{model}:batchEmbedContents`` and
``:embedContent`` (ai.google.dev/api/embeddings).

Checked as the generation routes are, in this order: the key (``x-goog-api-key`` or ``key``;
403 without, 400 ``API_KEY_INVALID`` when wrong); the body, as Google's proto parser reads
it: JSON, known fields only (``requests``; each request, or the body of ``embedContent``:
``model``, ``content``, ``taskType``, ``title``, ``outputDimensionality``), 400 with a
``BadRequest`` detail; the fault models (429 ``RESOURCE_EXHAUSTED``, 500, 503 as the
generation routes answer them); a model not in ``EMBEDDING_MODELS``: 404 ``NOT_FOUND``; then
what the request means (400): at least one request, each request's ``model`` the URL's
(``models/<model>``), content with text parts, ``outputDimensionality`` positive. The answer
(pretty-printed, as Google sends bodies): ``{"embeddings": [{"values": [...]}]}`` for a batch,
``{"embedding": {"values": [...]}}`` for one, each vector of the texts of its parts joined,
``outputDimensionality`` numbers long when given (``_embeddings``). Gemini reports no token
counts for embeddings, and neither does the fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from tests.fakes import _embeddings as vectors
from tests.fakes import _gemini_wire as wire
from tests.fakes._faults import FAULT_429, FAULT_500, FAULT_503, RETRY_AFTER_SECONDS
from tests.fakes._gemini_validate import Violation, field, json_violation

if TYPE_CHECKING:
    from tests.fakes.fake_gemini import FakeGemini

EMBEDDING_MODELS: Final = ("gemini-embedding-001", "text-embedding-004")
REQUEST_FIELDS: Final = frozenset(
    {"model", "content", "taskType", "task_type", "title", "outputDimensionality"}
    | {"output_dimensionality"}
)


def install(fake: FakeGemini) -> None:
    """Adds the embeddings routes (before the fake's generation route, which takes any
    method name)."""
    routes = _Routes(fake)
    fake.app.router.add_post("/v1beta/models/{model:[^/:]+}:batchEmbedContents", routes.batch)
    fake.app.router.add_post("/v1beta/models/{model:[^/:]+}:embedContent", routes.single)


def _unknown(value: object, known: frozenset[str], loc: str) -> list[Violation]:
    if not isinstance(value, dict):
        return [{"field": loc, "description": f"Invalid value at '{loc}', expected an object"}]
    where = f" at '{loc}'" if loc else ""
    return [
        {
            "field": loc,
            "description": f'Invalid JSON payload received. Unknown name "{name}"{where}: '
            "Cannot find field.",
        }
        for name in value
        if name not in known
    ]


def meaning_problem(request: Mapping[str, Any], model: str, loc: str) -> str | None:
    named = request.get("model")
    if named is not None and named != f"models/{model}":
        return f"* {loc}.model: the model must be the one of the URL, models/{model}\n"
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        return f"* {loc}.content.parts: contents.parts must not be empty.\n"
    if not all(isinstance(part, dict) and isinstance(part.get("text"), str) for part in parts):
        return f"* {loc}.content.parts: only text parts can be embedded.\n"
    size = field(request, "outputDimensionality")
    if size is not None and not (vectors.is_token(size) and size > 0):
        return f"* {loc}.output_dimensionality: must be a positive integer.\n"
    return None


def embedding(request: Mapping[str, Any]) -> dict[str, Any]:
    text = "".join(part["text"] for part in request["content"]["parts"])
    size = field(request, "outputDimensionality") or vectors.DEFAULT_DIMENSIONS
    return {"values": vectors.vector(text, size)}


class _Routes:
    def __init__(self, fake: FakeGemini) -> None:
        self.fake = fake

    async def _checked(self, request: web.Request, method: str) -> tuple[Any, web.Response | None]:
        fake = self.fake
        body, problem = await fake._record(request)
        model = request.match_info["model"]
        refusal = fake._key_refusal(request)
        if refusal is not None:
            return body, refusal
        if problem is not None:
            violations = [json_violation()]
        elif method == "batchEmbedContents":
            violations = _unknown(body, frozenset({"requests"}), "")
            requests = body.get("requests") if isinstance(body, dict) else None
            for index, item in enumerate(requests if isinstance(requests, list) else ()):
                violations += _unknown(item, REQUEST_FIELDS, f"requests[{index}]")
        else:
            violations = _unknown(body, REQUEST_FIELDS, "")
        if violations:
            message = "\n".join(violation["description"] for violation in violations)
            return body, fake._error(400, message, wire.bad_request_details(violations))
        if model == FAULT_429:
            details = wire.quota_details(model, RETRY_AFTER_SECONDS)
            return body, fake._error(429, wire.QUOTA, details)
        if model == FAULT_500:
            return body, fake._error(500, wire.INTERNAL)
        if model == FAULT_503:
            return body, fake._error(503, wire.OVERLOADED)
        if model not in EMBEDDING_MODELS:
            return body, fake._error(404, wire.not_found_message(model, method))
        return body, None

    def _answer(self, payload: Mapping[str, Any]) -> web.Response:
        return web.Response(
            text=wire.pretty(payload) + "\n", headers={"Content-Type": wire.JSON_TYPE}
        )

    async def batch(self, request: web.Request) -> web.StreamResponse:
        body, refusal = await self._checked(request, "batchEmbedContents")
        if refusal is not None:
            return refusal
        model = request.match_info["model"]
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return self.fake._error(400, "* BatchEmbedContentsRequest.requests: is empty\n")
        for index, item in enumerate(requests):
            problem = meaning_problem(item, model, f"BatchEmbedContentsRequest.requests[{index}]")
            if problem is not None:
                return self.fake._error(400, problem)
        return self._answer({"embeddings": [embedding(item) for item in requests]})

    async def single(self, request: web.Request) -> web.StreamResponse:
        body, refusal = await self._checked(request, "embedContent")
        if refusal is not None:
            return refusal
        problem = meaning_problem(body, request.match_info["model"], "EmbedContentRequest")
        if problem is not None:
            return self.fake._error(400, problem)
        return self._answer({"embedding": embedding(body)})
