"""The one internal embeddings call, in OpenAI's embeddings shape, and its answer.

The embeddings door decodes its request into an ``EmbeddingCall``; the provider's
``Embeddings`` wire (written in its family's module) builds the upstream request from it and
reads the upstream's answer back as vectors and usage (``EmbeddingsReader``). Vectors come
as the provider sent them, numbers or base64 text; ``encoded`` gives each one in the format
the client asked for, converting where the provider sent the other (Gemini and Ollama send
only numbers; OpenAI's SDK asks for base64 unless told otherwise).
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from chatwire.gateway.lines import ANY_JSON, StreamFailed

# What a wire makes of the provider's decoded answer: the vectors in input order, and the
# usage in OpenAI's shape (only the keys the provider reported), or None when it reported none.
Parse = Callable[[Any], tuple[list[Any], dict[str, int] | None]]


@dataclass(slots=True)
class EmbeddingCall:
    # The model as the client named it (echoed in the answer, in full), and as the provider
    # knows it once resolved.
    name: str
    model: str
    # ``input`` as the client sent it: a string, strings, a token array, or token arrays.
    input: Any
    # The inputs as texts; None when they are token arrays.
    texts: list[str] | None
    # How many vectors the answer must have.
    count: int
    # "float" or "base64" as the client asked, None when it did not say (then floats, as
    # OpenAI answers).
    encoding_format: str | None = None
    dimensions: int | None = None
    # Every other parameter as the client sent it (``user``, a provider's own ones).
    params: dict[str, Any] = field(default_factory=dict)


class EmbeddingsReader:
    """One embeddings answer, read whole: ``feed`` keeps each block, ``close`` decodes them
    and has the wire's ``parse`` find the vectors and the usage. The upstream client's relay
    bounds its size (``CHATWIRE_MAX_REPLY_BYTES``) and time."""

    __slots__ = ("_parse", "_parts", "finished", "usage", "vectors")

    def __init__(self, parse: Parse) -> None:
        self._parse = parse
        self._parts: list[bytes] = []
        self.finished = False
        self.vectors: list[Any] = []
        self.usage: dict[str, int] | None = None

    def feed(self, block: bytes) -> list[Any]:
        self._parts.append(block)
        return []

    def close(self) -> list[Any]:
        data, self._parts = b"".join(self._parts), []
        try:
            answer = ANY_JSON.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
            raise StreamFailed("an embeddings answer that is not JSON") from None
        try:
            self.vectors, self.usage = self._parse(answer)
        except (AttributeError, TypeError, KeyError, ValueError, IndexError):
            raise StreamFailed("an embeddings answer of another shape") from None
        self.finished = True
        return []


def token_usage(prompt: Any, total: Any = None) -> dict[str, int] | None:
    """Usage in OpenAI's embeddings shape from the counts a provider reported: the input
    tokens, and the total where it gave one (an embedding has no output, so the total is the
    input when it gave none); None when it reported no count."""
    if not _count(prompt):
        return None
    return {"prompt_tokens": prompt, "total_tokens": total if _count(total) else prompt}


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def encoded(vector: Any, encoding: str | None) -> Any:
    """A vector as the client asked for it: base64 of little-endian float32 numbers (what
    OpenAI sends), or the numbers."""
    if encoding == "base64":
        if isinstance(vector, str):
            return vector
        return base64.b64encode(_float32(vector).tobytes()).decode("ascii")
    if isinstance(vector, str):
        try:
            raw = base64.b64decode(vector, validate=True)
        except (binascii.Error, ValueError):
            raise StreamFailed("an embedding that is neither numbers nor base64") from None
        if len(raw) % 4:
            raise StreamFailed("a base64 embedding that is not float32 numbers")
        numbers = array("f", raw)
        if sys.byteorder == "big":
            numbers.byteswap()
        return numbers.tolist()
    if not isinstance(vector, list):
        raise StreamFailed("an embedding that is not a list of numbers")
    return vector


def _float32(vector: Any) -> array[float]:
    if not isinstance(vector, list):
        raise StreamFailed("an embedding that is not a list of numbers")
    try:
        numbers = array("f", vector)
    except (TypeError, OverflowError):
        raise StreamFailed("an embedding that is not a list of numbers") from None
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers
