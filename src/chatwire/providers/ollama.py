"""Ollama: ``POST /api/chat``, newline-delimited JSON, no key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.providers import content
from chatwire.providers.base import Provider, StreamFailed, Target, UpstreamCall
from chatwire.providers.limits import max_tokens, temperature
from chatwire.providers.lines import JSONLines, LineDecoder

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest, Message
    from chatwire.catalogue import ModelEntry


class _Message(msgspec.Struct):
    content: str = ""


class _Line(msgspec.Struct):
    message: _Message | None = None
    done: bool = False
    error: str | None = None


class OllamaChat:
    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._line = msgspec.json.Decoder(_Line)

    def build(
        self, provider: Provider, target: Target, request: ChatRequest, limits: ModelEntry | None
    ) -> UpstreamCall:
        return self.call(provider, target, self.payload(provider, target, request, limits))

    def payload(
        self, provider: Provider, target: Target, request: ChatRequest, limits: ModelEntry | None
    ) -> dict[str, Any]:
        """The /api/chat body: the messages with their images, the temperature and budget."""
        options: dict[str, Any] = {}
        value = temperature(provider.quirks, request, limits)
        if value is not None:
            options["temperature"] = value
        budget = max_tokens(provider.quirks, target, limits)
        if budget is not None:
            options["num_predict"] = budget
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": [_message(m) for m in request.messages],
            "stream": True,
        }
        if options:
            payload["options"] = options
        return payload

    def call(self, provider: Provider, target: Target, payload: dict[str, Any]) -> UpstreamCall:
        """A body (``payload``, perhaps added to) posted to the target's /api/chat."""
        return UpstreamCall(
            url=f"{target.base_url}/api/chat",
            headers={**provider.auth_headers(target.key), "Content-Type": "application/json"},
            body=self._encoder.encode(payload),
        )

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False

    def decoder(self, provider: Provider) -> LineDecoder:
        return _NDJSONDecoder(self._line)


def _message(message: Message) -> dict[str, Any]:
    texts: list[str] = []
    images: list[str] = []
    for part in content.parts(message):
        if isinstance(part, str):
            texts.append(part)
        elif part.data is not None:
            images.append(part.data)
    result: dict[str, Any] = {"role": message.role, "content": "\n\n".join(texts)}
    if images:
        result["images"] = images
    return result


class _NDJSONDecoder(JSONLines[_Line]):
    """One JSON object per line; ``done: true`` ends the reply."""

    __slots__ = ()

    def item(self, item: _Line) -> str | None:
        if item.error is not None:
            raise StreamFailed(f"an error in the middle of the reply: {item.error}")
        if item.done:
            self.finished = True
        return item.message.content if item.message is not None else None
