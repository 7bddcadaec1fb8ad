"""The fake Mistral's embeddings: ``POST /v1/embeddings`` (docs.mistral.ai/api/endpoint/embeddings).

Checked as the chat route is, in this order: ``Authorization: Bearer <api_key>`` (401); the
body, as Mistral's pydantic models read it (422 entries, ``_mistral_validate.entry``):
``model`` and ``input`` required, ``input`` a string or a list of strings (token arrays are
refused), only Mistral's fields (``model``, ``input``, ``output_dimension``, ``output_dtype``,
``encoding_format``, ``metadata``: OpenAI's ``dimensions`` and ``user`` are
``extra_forbidden``), ``encoding_format`` ``float`` or ``base64``, ``output_dimension`` a
positive integer; then ``fail_next``'s failures and the fault models (429, 500, 503 in
Mistral's words); a model not in ``EMBEDDING_MODELS`` is a 400 ``invalid_model``. The answer:
``{"id", "object": "list", "data": [{"object": "embedding", "embedding", "index"}], "model",
"usage": {"prompt_tokens", "total_tokens", "completion_tokens": 0}}``, each vector as numbers
or base64 (``_embeddings``), ``output_dimension`` numbers long when given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from tests.fakes import _embeddings as vectors
from tests.fakes import _mistral_replies as replies
from tests.fakes._faults import FAULT_429, FAULT_500, FAULT_503, RETRY_AFTER_SECONDS
from tests.fakes._mistral_validate import ErrorEntry, entry

if TYPE_CHECKING:
    from tests.fakes.fake_mistral import FakeMistral

EMBEDDING_MODELS: Final = ("mistral-embed", "codestral-embed")
FIELDS: Final = frozenset(
    {"model", "input", "output_dimension", "output_dtype", "encoding_format", "metadata"}
)


def install(fake: FakeMistral) -> None:
    fake.app.router.add_post("/v1/embeddings", _Routes(fake).embeddings)


def problems(body: object) -> list[ErrorEntry]:
    """The 422 entries of an embeddings body, in pydantic's order."""
    if not isinstance(body, dict):
        message = "Input should be a valid dictionary or object to extract fields from"
        return [entry("model_attributes_type", ("body",), message, body)]
    found: list[ErrorEntry] = []
    for name in ("model", "input"):
        if name not in body:
            found.append(entry("missing", ("body", name), "Field required", body))
    if "model" in body and not isinstance(body["model"], str):
        found.append(entry("string_type", ("body", "model"), _STRING, body["model"]))
    given = body.get("input")
    if isinstance(given, list):
        found += [
            entry("string_type", ("body", "input", "list[str]", index), _STRING, item)
            for index, item in enumerate(given)
            if not isinstance(item, str)
        ]
    elif "input" in body and not isinstance(given, str):
        found.append(entry("string_type", ("body", "input", "str"), _STRING, given))
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        ctx = {"expected": "'float' or 'base64'"}
        message = "Input should be 'float' or 'base64'"
        found.append(entry("enum", ("body", "encoding_format"), message, encoding, ctx))
    size = body.get("output_dimension")
    if size is not None and not (vectors.is_token(size) and size > 0):
        message = "Input should be greater than 0"
        found.append(entry("greater_than", ("body", "output_dimension"), message, size))
    found += [
        entry("extra_forbidden", ("body", key), "Extra inputs are not permitted", value)
        for key, value in body.items()
        if key not in FIELDS
    ]
    return found


def answer(body: dict[str, Any]) -> dict[str, Any]:
    items: list[str] = [body["input"]] if isinstance(body["input"], str) else body["input"]
    size = body.get("output_dimension") or vectors.DEFAULT_DIMENSIONS
    as_text = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        numbers = vectors.vector(item, size)
        embedding: Any = vectors.as_base64(numbers) if as_text else numbers
        data.append({"object": "embedding", "embedding": embedding, "index": index})
    prompt = sum(vectors.tokens(item) for item in items)
    usage = {"prompt_tokens": prompt, "total_tokens": prompt, "completion_tokens": 0}
    return {
        "id": replies.new_id(),
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": usage,
    }


_STRING: Final = "Input should be a valid string"


class _Routes:
    def __init__(self, fake: FakeMistral) -> None:
        self.fake = fake

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        body, json_problem = await fake._read(request)
        if not fake._authorized(request):
            return fake._json(401, replies.unauthorized_body(fake.error_shape))
        errors = [json_problem] if json_problem is not None else problems(body)
        if errors:
            return fake._json(422, replies.validation_body(fake.error_shape, errors))
        if fake._failures:
            return fake._failure()
        model: str = body["model"]
        if model == FAULT_429:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return fake._json(429, replies.rate_limit_body(fake.error_shape), headers)
        if model == FAULT_500:
            error = replies.server_error_body(fake.error_shape)
            if isinstance(error, str):
                return web.Response(status=500, text=error, content_type="text/plain")
            return fake._json(500, error)
        if model == FAULT_503:
            return fake._json(503, replies.unavailable_body())
        if model not in EMBEDDING_MODELS:
            return fake._json(400, replies.invalid_model_body(model))
        return fake._json(200, answer(body), replies.rate_limit_headers())
