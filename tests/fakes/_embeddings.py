"""What every fake's embeddings share: deterministic vectors, token counts, base64.

A text (or a token array) always gets the same vector: numbers in [-1, 1] drawn from the
SHA-256 of the text, each a multiple of 1/1024, so that it is exact as a float32 and a base64
answer decodes to exactly the numbers a float answer has. Vectors have ``DEFAULT_DIMENSIONS``
numbers (real models have 768 to 3072; fewer keep the tests fast) unless the request asks for
a number of dimensions. A text counts as many tokens as it has word pieces
(``_text.count_tokens``), a token array as many as it has tokens.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Final

from tests.fakes._text import count_tokens

DEFAULT_DIMENSIONS: Final = 16


def vector(item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The vector the fakes give ``item`` (a text or a token array)."""
    seed = item if isinstance(item, str) else ",".join(str(token) for token in item)
    numbers: list[float] = []
    counter = 0
    while len(numbers) < dimensions:
        digest = hashlib.sha256(f"{counter}:{seed}".encode()).digest()
        numbers += [
            (int.from_bytes(digest[i : i + 2], "big") % 2049 - 1024) / 1024
            for i in range(0, len(digest), 2)
        ]
        counter += 1
    return numbers[:dimensions]


def tokens(item: str | list[int]) -> int:
    return count_tokens(item) if isinstance(item, str) else len(item)


def as_base64(numbers: list[float]) -> str:
    """Little-endian float32 numbers in base64, as OpenAI sends ``encoding_format: base64``."""
    return base64.b64encode(struct.pack(f"<{len(numbers)}f", *numbers)).decode("ascii")


def is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def inputs(value: object) -> list[str | list[int]] | None:
    """OpenAI's ``input`` as a list of items (texts or token arrays); None when malformed."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, str) for item in value):
        return list(value)
    if all(is_token(item) for item in value):
        return [list(value)]
    if all(isinstance(item, list) and item and all(is_token(t) for t in item) for item in value):
        return [list(item) for item in value]
    return None
