"""The fake Ollama's embeddings: ``POST /api/embed`` (docs.ollama.com/api/embed).

Checked as the chat route is, in this order (errors ``{"error": "<text>"}``): the key when the
fake has one (401); the body: JSON (400 in ``encoding/json``'s words), ``model`` set (400
"model is required"), ``input`` a string or a list of strings (400 "invalid input type"),
``dimensions`` a positive integer; the fault models (500, 503 as the chats answer them); a
model pulled neither as an embedding model (``embedding_models``) nor as a chat model
(``models``): 404 ``model "<name>" not found, try pulling it first``; a chat model: 400
``this model does not support embeddings``. The answer: ``{"model", "embeddings": [[...]],
"total_duration", "load_duration", "prompt_eval_count"}``, the vectors ``dimensions`` long
when given (``_embeddings``). The embedding models are not in ``/api/tags``: the fake lists
only its chat models there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from tests.fakes import _embeddings as vectors
from tests.fakes import _ollama_validate as validate
from tests.fakes import _ollama_wire as wire
from tests.fakes._faults import FAULT_500, FAULT_503

if TYPE_CHECKING:
    from tests.fakes.fake_ollama import FakeOllama

EMBEDDING_MODELS: Final = ("nomic-embed-text:latest", "mxbai-embed-large:latest")


def install(fake: FakeOllama) -> None:
    """Adds the route (before the fake's catch-all route)."""
    fake.app.router.add_post("/api/embed", _Routes(fake).embed)


def _canonical(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def answer(body: dict[str, Any]) -> dict[str, Any]:
    items: list[str] = [body["input"]] if isinstance(body["input"], str) else body["input"]
    size = body.get("dimensions") or vectors.DEFAULT_DIMENSIONS
    return {
        "model": body["model"],
        "embeddings": [vectors.vector(item, size) for item in items],
        "total_duration": 14_143_917,
        "load_duration": wire.LOAD_DURATION_NS,
        "prompt_eval_count": sum(vectors.tokens(item) for item in items),
    }


class _Routes:
    def __init__(self, fake: FakeOllama) -> None:
        self.fake = fake

    async def embed(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        body, problem = await fake._record(request)
        refusal = fake._auth_refusal(request)
        if refusal is not None:
            return refusal
        if problem is not None:
            return fake._error(400, validate.decode_problem(await request.read(), problem))
        if not isinstance(body, dict):
            return fake._error(400, "json: cannot unmarshal into Go value of type api.EmbedRequest")
        if not body.get("model"):
            return fake._error(400, "model is required")
        given = body.get("input")
        texts = isinstance(given, str) or (
            isinstance(given, list) and all(isinstance(item, str) for item in given)
        )
        if not texts:
            return fake._error(400, "invalid input type")
        size = body.get("dimensions")
        if size is not None and not (vectors.is_token(size) and size > 0):
            return fake._error(400, "dimensions must be a positive integer")
        model: str = body["model"]
        fault = model.removesuffix(":latest")
        if fault == FAULT_500:
            return fake._error(500, wire.RUNNER_CRASHED)
        if fault == FAULT_503:
            return fake._error(503, wire.SERVER_BUSY)
        embedding = {_canonical(name) for name in fake.embedding_models}
        chat = {_canonical(name) for name in fake.models}
        if _canonical(model) not in embedding | chat:
            return fake._error(404, f'model "{model}" not found, try pulling it first')
        if _canonical(model) not in embedding:
            return fake._error(400, "this model does not support embeddings")
        return fake._json(200, answer(body))
