"""The fake OpenAI's embeddings: ``POST /v1/embeddings`` and Azure's
``POST /openai/deployments/{deployment}/embeddings?api-version=...``.

Checked as the chat route is, in this order: the key (Azure: ``api-version``, ``api-key``,
then the deployment, looked up in ``embedding_deployments``); the body: JSON, an object,
``model`` (not on Azure), ``input`` (a string, strings, a token array or token arrays, none
empty), ``encoding_format`` (``float`` or ``base64``), ``dimensions`` (a positive integer,
refused by ``text-embedding-ada-002``: "This model does not support specifying dimensions.");
the fault models (429, 500, 503 as the chats answer them; ``fake-stall`` never answers); a
model not in ``EMBEDDING_MODELS``
is a 404 ``model_not_found``. The answer: ``{"object": "list", "data": [{"object":
"embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``,
each vector as numbers, or base64 when asked (``_embeddings``). Every request is recorded in
the fake's ``requests``; Azure's deployments called in ``deployments_called``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from tests.fakes import _azure_wire as azure
from tests.fakes import _embeddings as vectors
from tests.fakes import _openai_wire as wire
from tests.fakes import _send
from tests.fakes._faults import FAULT_STALL
from tests.fakes._text import compact

if TYPE_CHECKING:
    from tests.fakes.fake_openai import FakeOpenAI

EMBEDDING_MODELS: Final = (
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)
# Azure deployment -> the model it serves.
EMBEDDING_DEPLOYMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {"embeddings-small": "text-embedding-3-small"}
)
NO_DIMENSIONS: Final = frozenset({"text-embedding-ada-002"})


def install(fake: FakeOpenAI) -> None:
    """Adds the embeddings routes (before the fake's catch-all route)."""
    routes = _Routes(fake)
    fake.app.router.add_post("/v1/embeddings", routes.embeddings)
    fake.app.router.add_post("/openai/deployments/{deployment}/embeddings", routes.azure)


def answer(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The answer to a valid request ``body``, as ``model``."""
    items = vectors.inputs(body["input"]) or []
    size = body.get("dimensions") or vectors.DEFAULT_DIMENSIONS
    as_text = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        numbers = vectors.vector(item, size)
        embedding: Any = vectors.as_base64(numbers) if as_text else numbers
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    prompt = sum(vectors.tokens(item) for item in items)
    usage = {"prompt_tokens": prompt, "total_tokens": prompt}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def body_problem(body: object, *, model_required: bool) -> wire.Problem | None:
    if not isinstance(body, dict):
        kind = wire.json_type(body)
        return f"Invalid type for body: expected an object, but got {kind} instead.", None, None
    if model_required and not isinstance(body.get("model"), str):
        return "You must provide a model parameter.", None, None
    if "input" not in body:
        return "'input' is a required property", None, None
    if vectors.inputs(body["input"]) is None:
        return "'$.input' is invalid. Please check the API reference.", None, None
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        message = f"{encoding!r} is not one of ['float', 'base64'] - 'encoding_format'"
        return message, None, None
    dimensions = body.get("dimensions")
    if dimensions is not None and not (vectors.is_token(dimensions) and dimensions > 0):
        return f"Invalid 'dimensions': {dimensions!r}.", "dimensions", None
    return None


class _Routes:
    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake

    def _json(self, payload: Mapping[str, Any]) -> web.Response:
        return web.Response(
            text=compact(payload), content_type="application/json", headers=self.fake._headers()
        )

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        body, problem = await fake._record(request)
        refusal = fake._auth_refusal(request)
        if refusal is not None:
            return refusal
        if problem is not None:
            return fake._error(400, wire.BAD_JSON)
        found = body_problem(body, model_required=True)
        if found is not None:
            message, param, code = found
            return fake._error(400, message, param=param, code=code)
        model: str = body["model"]
        if model == FAULT_STALL:
            await _send.forever()
        refusal = fake._fault_refusal(model)
        if refusal is None and model not in EMBEDDING_MODELS:
            refusal = fake._error(404, wire.model_not_found(model), code="model_not_found")
        if refusal is None and model in NO_DIMENSIONS and body.get("dimensions") is not None:
            refusal = fake._error(400, "This model does not support specifying dimensions.")
        return refusal or self._json(answer(body, model))

    async def azure(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        body, problem = await fake._record(request)
        deployment = request.match_info["deployment"]
        fake.deployments_called.append(deployment)
        version = request.query.get("api-version")
        if version is None:
            return fake._azure_error(404, azure.RESOURCE_NOT_FOUND)
        if version not in azure.API_VERSIONS:
            return fake._azure_error(400, azure.VERSION_NOT_SUPPORTED)
        if not fake._key_matches(request.headers.get("api-key")):
            return fake._azure_error(401, azure.ACCESS_DENIED)
        known = fake.embedding_deployments
        if deployment not in known and deployment not in fake.fault_models:
            return fake._azure_error(404, azure.DEPLOYMENT_NOT_FOUND)
        if problem is not None:
            return fake._error(400, wire.BAD_JSON)
        found = body_problem(body, model_required=False)
        if found is not None:
            message, param, code = found
            return fake._error(400, message, param=param, code=code)
        refusal = fake._azure_fault_refusal(deployment, version)
        return refusal or self._json(answer(body, known.get(deployment, deployment)))
