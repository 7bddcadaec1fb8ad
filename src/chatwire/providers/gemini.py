"""Google Gemini: ``models/{model}:streamGenerateContent?alt=sse``.

Earlier messages become the history with Gemini's roles (``user`` / ``model``), the last
one is the new turn; system messages become ``systemInstruction``; data-URL images become
``inline_data`` parts. A refused key is a 400 whose details carry reason API_KEY_INVALID.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from chatwire.providers import content
from chatwire.providers.base import Provider, StreamFailed, Target, UpstreamCall
from chatwire.providers.error_text import readable_message
from chatwire.providers.limits import max_tokens, temperature
from chatwire.providers.lines import JSONLines, LineDecoder

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest, Message
    from chatwire.catalogue import ModelEntry

KEY_REFUSED = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})


class _Part(msgspec.Struct):
    text: str | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = msgspec.field(default_factory=list)


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None


class _Feedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _Chunk(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = msgspec.field(default_factory=list)
    prompt_feedback: _Feedback | None = None
    error: Any = None


class _ErrorDetail(msgspec.Struct):
    reason: str | None = None


class _Error(msgspec.Struct):
    details: list[_ErrorDetail] = msgspec.field(default_factory=list)


class _ErrorBody(msgspec.Struct):
    error: _Error | None = None


class GeminiGenerateContent:
    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._chunk = msgspec.json.Decoder(_Chunk)
        self._error = msgspec.json.Decoder(_ErrorBody)

    def build(
        self, provider: Provider, target: Target, request: ChatRequest, limits: ModelEntry | None
    ) -> UpstreamCall:
        system = [content.text(m) for m in request.messages if m.role == "system"]
        contents = [
            {"role": "model" if m.role == "assistant" else "user", "parts": message_parts(m)}
            for m in request.messages
            if m.role != "system"
        ]
        payload: dict[str, Any] = {"contents": [c for c in contents if c["parts"]]}
        if system:
            payload["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config: dict[str, Any] = {}
        value = temperature(provider.quirks, request, limits)
        if value is not None:
            config["temperature"] = value
        budget = max_tokens(provider.quirks, target, limits)
        if budget is not None:
            config["maxOutputTokens"] = budget
        if config:
            payload["generationConfig"] = config
        return stream_call(provider, target, self._encoder.encode(payload))

    def key_rejected(self, status: int, body: bytes) -> bool:
        if status not in (400, 403):
            return False
        try:
            parsed = self._error.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return False
        return parsed.error is not None and any(
            d.reason in KEY_REFUSED for d in parsed.error.details
        )

    def decoder(self, provider: Provider) -> LineDecoder:
        return _ChunkDecoder(self._chunk)


def stream_call(provider: Provider, target: Target, body: bytes) -> UpstreamCall:
    """The streamed ``generateContent`` call for a request body, as server-sent events."""
    return UpstreamCall(
        url=f"{target.base_url}/models/{quote(target.model, safe='')}"
        ":streamGenerateContent?alt=sse",
        headers={
            **provider.auth_headers(target.key),
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        },
        body=body,
    )


def message_parts(message: Message) -> list[dict[str, Any]]:
    """A message's text and images as Gemini parts, in order; empty text left out."""
    found: list[dict[str, Any]] = []
    for part in content.parts(message):
        if isinstance(part, str):
            if part:
                found.append({"text": part})
        elif part.data is not None:
            found.append({"inline_data": {"mime_type": part.media_type, "data": part.data}})
        else:
            found.append({"file_data": {"file_uri": part.url}})
    return found


class _ChunkDecoder(JSONLines[_Chunk]):
    """Each ``data:`` line is a GenerateContentResponse; a finishReason ends the reply."""

    __slots__ = ()
    prefix = b"data:"

    def item(self, chunk: _Chunk) -> str | None:
        if chunk.error is not None:
            detail = readable_message(msgspec.json.encode(chunk.error)) or "no details"
            raise StreamFailed(f"an error in the middle of the reply: {detail}")
        if chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason:
            raise StreamFailed(f"the prompt was blocked ({chunk.prompt_feedback.block_reason})")
        if not chunk.candidates:
            return None
        candidate = chunk.candidates[0]
        if candidate.finish_reason is not None:
            self.finished = True
        if candidate.content is None:
            return None
        return "".join(p.text for p in candidate.content.parts if p.text)
