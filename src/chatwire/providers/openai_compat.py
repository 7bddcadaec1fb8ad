"""The OpenAI-compatible wire format: chat/completions with data-only server-sent events.

Mistral speaks it, and so do most providers. The request body is built from typed structs
(so only fields the provider accepts are ever sent) and each stream chunk is decoded by a
typed decoder that reads just the delta, finish reason and error, skipping the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.api.schemas import Message
from chatwire.providers.base import Provider, StreamFailed, Target, UpstreamCall
from chatwire.providers.error_text import readable_message
from chatwire.providers.limits import max_tokens, temperature
from chatwire.providers.lines import JSONLines, LineDecoder

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest
    from chatwire.catalogue import ModelEntry


class _Payload(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[Message]
    stream: bool
    max_tokens: int | None = None
    temperature: float | None = None


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    error: Any = None


class OpenAICompatible:
    """Adapter for ``POST {base}/chat/completions`` with ``stream: true``."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._chunk = msgspec.json.Decoder(_Chunk)

    def build(
        self, provider: Provider, target: Target, request: ChatRequest, limits: ModelEntry | None
    ) -> UpstreamCall:
        quirks = provider.quirks
        payload = _Payload(
            model=target.model,
            messages=request.messages,
            stream=True,
            max_tokens=max_tokens(quirks, target, limits),
            temperature=temperature(quirks, request, limits),
        )
        return UpstreamCall(
            url=f"{target.base_url}/chat/completions{target.query}",
            headers={
                **provider.auth_headers(target.key),
                **target.headers,
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
            body=self._encoder.encode(payload),
        )

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False  # 401 says it, for every OpenAI-compatible provider

    def decoder(self, provider: Provider) -> LineDecoder:
        return _EventDecoder(self._chunk)


class _EventDecoder(JSONLines[_Chunk]):
    """Data-only server-sent events; each ``data:`` line is one JSON chunk, then [DONE]."""

    __slots__ = ()
    prefix = b"data:"

    def item(self, chunk: _Chunk) -> str | None:
        if chunk.error is not None:
            detail = readable_message(msgspec.json.encode(chunk.error)) or "no details"
            raise StreamFailed(f"an error in the middle of the reply: {detail}")
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            if choice.finish_reason == "error":
                raise StreamFailed("the reply ended with finish_reason 'error'")
            self.finished = True
        return choice.delta.content if choice.delta is not None else None
