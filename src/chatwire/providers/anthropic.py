"""Anthropic's Messages API: ``POST /v1/messages``, its own server-sent event types.

The first system message(s) become ``system``; the rest alternate user / assistant (two
turns of the same role in a row are merged, as the API wants); image parts become base64
(or URL) image blocks; ``max_tokens`` is required, so it always comes from the catalogue,
else a default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.providers import content
from chatwire.providers.base import Provider, StreamFailed, Target, UpstreamCall
from chatwire.providers.error_text import readable_message
from chatwire.providers.limits import max_tokens, temperature
from chatwire.providers.lines import JSONLines, LineDecoder

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest, Message
    from chatwire.catalogue import ModelEntry

DEFAULT_MAX_TOKENS = 4096


class _Delta(msgspec.Struct):
    type: str = ""
    text: str | None = None


class _Event(msgspec.Struct):
    type: str
    delta: _Delta | None = None
    error: Any = None


class AnthropicMessages:
    def __init__(self, version: str) -> None:
        self._version = version
        self._encoder = msgspec.json.Encoder()
        self._event = msgspec.json.Decoder(_Event)

    def build(
        self, provider: Provider, target: Target, request: ChatRequest, limits: ModelEntry | None
    ) -> UpstreamCall:
        system: list[str] = []
        turns: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role == "system":
                if not turns:
                    system.append(content.text(message))
                    continue
                role = "user"  # a later system message is kept as the user's words
            else:
                role = "assistant" if message.role == "assistant" else "user"
            blocks = content_blocks(message)
            if not blocks:
                continue
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"].extend(blocks)
            else:
                turns.append({"role": role, "content": blocks})
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": turns,
            "max_tokens": max_tokens(provider.quirks, target, limits) or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            payload["system"] = "\n\n".join(system)
        value = temperature(provider.quirks, request, limits)
        if value is not None:
            payload["temperature"] = value
        return self.call(provider, target, payload)

    def call(self, provider: Provider, target: Target, payload: dict[str, Any]) -> UpstreamCall:
        """The streamed ``POST /messages`` for a Messages API body."""
        return UpstreamCall(
            url=f"{target.base_url}/messages",
            headers={
                **provider.auth_headers(target.key),
                "anthropic-version": self._version,
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
            body=self._encoder.encode(payload),
        )

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False  # Anthropic refuses a key with 401 authentication_error

    def decoder(self, provider: Provider) -> LineDecoder:
        return _EventDecoder(self._event)


def content_blocks(message: Message) -> list[dict[str, Any]]:
    """The message's text and image parts as Messages API content blocks."""
    blocks: list[dict[str, Any]] = []
    for part in content.parts(message):
        if isinstance(part, str):
            if part:
                blocks.append({"type": "text", "text": part})
        elif part.data is not None:
            source = {"type": "base64", "media_type": part.media_type, "data": part.data}
            blocks.append({"type": "image", "source": source})
        else:
            blocks.append({"type": "image", "source": {"type": "url", "url": part.url}})
    return blocks


class _EventDecoder(JSONLines[_Event]):
    """Anthropic's events: text arrives in content_block_delta; message_stop ends the reply.
    The "event:" lines repeat the type that each data value carries itself."""

    __slots__ = ()
    prefix = b"data:"

    def item(self, event: _Event) -> str | None:
        if event.type == "content_block_delta":
            delta = event.delta
            return delta.text if delta is not None and delta.type == "text_delta" else None
        if event.type == "message_stop":
            self.finished = True
        elif event.type == "error":
            detail = readable_message(msgspec.json.encode(event.error)) or "no details"
            raise StreamFailed(f"an error in the middle of the reply: {detail}")
        return None
