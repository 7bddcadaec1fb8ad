"""OpenAI's embeddings: ``POST /v1/embeddings``, for any standard client.

The request: ``model`` (``provider/model``, or a bare id the catalogue gives to one
provider), ``input`` (a string, a list of strings, a token array or a list of token arrays),
``encoding_format`` (``float`` or ``base64``), ``dimensions``, and any other parameter, which
goes to the provider as its rules say (``user``...). The answer is OpenAI's
``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
"usage"}`` with an ``id`` (``embd-<request id>``, which the mistralai SDK wants): each
vector in the format asked for (numbers when none was asked, as OpenAI does), under the
model's name as ``/v1/models`` lists it, with the usage the provider reported and no
``usage`` at all when it reported none (Gemini). It is never streamed.
Errors are in OpenAI's shape, as on ``/v1/chat/completions``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from chatwire.api.asgi import Send
from chatwire.api.openai_errors import openai_error
from chatwire.dialects.openai_chat import decode_body, send_json
from chatwire.errors import ChatwireError, RequestInvalid
from chatwire.gateway.embedding_call import EmbeddingCall, EmbeddingsReader, encoded
from chatwire.gateway.lines import StreamFailed
from chatwire.timing import Timing

PATH = "/v1/embeddings"
# The request's fields the door reads itself; every other one goes to the provider.
OWN_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions"})
FORMATS = ("float", "base64")


class EmbeddingRequest(msgspec.Struct, forbid_unknown_fields=False):
    """The request's fields chatwire reads itself (for the OpenAPI description; every other
    parameter goes to the provider as sent)."""

    model: str
    # A string, strings, a token array or token arrays (the schema can say no more precisely).
    input: str | list[str | int | list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None


class OpenAIEmbeddings:
    route = PATH

    def decode(self, body: bytes) -> EmbeddingCall:
        fields = decode_body(body, "an embeddings request")
        model = fields.get("model")
        if not isinstance(model, str):
            raise _invalid("model", "a string")
        value = fields.get("input")
        texts, count = _inputs(value)
        encoding = fields.get("encoding_format")
        if encoding is not None and encoding not in FORMATS:
            raise RequestInvalid(
                f"'encoding_format' must be 'float' or 'base64', not {encoding!r:.50}."
            )
        dimensions = fields.get("dimensions")
        if dimensions is not None and not (
            isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions > 0
        ):
            raise RequestInvalid(
                f"'dimensions' must be a positive integer, not {dimensions!r:.50}."
            )
        params = {k: v for k, v in fields.items() if k not in OWN_FIELDS and v is not None}
        return EmbeddingCall(
            name=model,
            model=model,
            input=value,
            texts=texts,
            count=count,
            encoding_format=encoding,
            dimensions=dimensions,
            params=params,
        )

    def output(
        self, send: Send, rid: bytes, timing: Timing, call: EmbeddingCall, reader: EmbeddingsReader
    ) -> EmbeddingsOutput:
        return EmbeddingsOutput(send, rid, timing, call, reader)

    async def send_error(
        self, send: Send, error: ChatwireError, rid: bytes, timing: Timing
    ) -> None:
        await send_json(send, error.status, openai_error(error), rid, timing, error.headers())


def _inputs(value: Any) -> tuple[list[str] | None, int]:
    """The inputs as texts (None for token arrays), and how many vectors they make."""
    if isinstance(value, str):
        return [value], 1
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return value, len(value)
        if all(_token(item) for item in value):
            return None, 1
        if all(isinstance(item, list) and item and all(_token(t) for t in item) for item in value):
            return None, len(value)
    if value is None:
        raise _invalid("input", "a string or a list of strings")
    raise RequestInvalid(
        "'input' must be a string, a list of strings, a token array (a list of integers) or a "
        "list of token arrays, none of them empty."
    )


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _invalid(name: str, expected: str) -> RequestInvalid:
    return RequestInvalid(f"Invalid request body: '{name}' is required, {expected}.")


class EmbeddingsOutput:
    """The answer, sent once the provider's has been read whole (the relay's ``end``)."""

    __slots__ = ("_call", "_reader", "_rid", "_send", "_timing")
    started = False

    def __init__(
        self, send: Send, rid: bytes, timing: Timing, call: EmbeddingCall, reader: EmbeddingsReader
    ) -> None:
        self._send = send
        self._rid = rid
        self._timing = timing
        self._call = call
        self._reader = reader

    async def write(self, items: Any) -> None:
        pass  # the reader keeps the answer until its end

    async def end(self) -> None:
        call, reader = self._call, self._reader
        vectors = reader.vectors
        if len(vectors) != call.count:
            raise StreamFailed(f"{len(vectors)} embeddings for {call.count} inputs")
        fmt = call.encoding_format
        answer: dict[str, Any] = {
            # OpenAI's answer has no id; Mistral's (and its SDK) wants one.
            "id": f"embd-{self._rid.decode()}",
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": encoded(vector, fmt)}
                for index, vector in enumerate(vectors)
            ],
            "model": call.name,
        }
        if reader.usage is not None:
            answer["usage"] = reader.usage
        await send_json(self._send, 200, answer, self._rid, self._timing, [])

    async def fail(self, error: ChatwireError) -> None:  # pragma: no cover - never started
        raise error
