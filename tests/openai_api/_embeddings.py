"""What the /v1/embeddings tests share: the texts, the clients, reading the answers."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from tests.conftest import Running
from tests.fakes._text import count_tokens

TEXTS = ["The gateway embeds text", "and every provider answers alike"]


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


def floats(text: str) -> list[float]:
    """A base64 embedding's numbers (little-endian float32)."""
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def said(caught: pytest.ExceptionInfo[openai.APIStatusError]) -> str:
    """The error's message as chatwire wrote it (the SDK's message adds the status)."""
    body = caught.value.body
    assert isinstance(body, dict)
    message = body["message"]
    assert isinstance(message, str)
    return message


def tokens(texts: list[str]) -> int:
    return sum(count_tokens(text) for text in texts)
