"""The chatbot-ui chat request body, decoded and validated in one pass by msgspec.

Unknown fields are accepted and ignored (the chatbot-ui client sends more than the relay
needs); only what affects the upstream call is typed strictly.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from chatwire.errors import RequestInvalid


class ImageURL(msgspec.Struct, omit_defaults=True):
    url: str
    detail: str | None = None


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    image_url: ImageURL | str


Part = TextPart | ImagePart
# "model" is Gemini's assistant: chatbot-ui's browser sends Gemini-shaped messages to its
# google route (its adaptMessagesForGoogleGemini).
Role = Literal["system", "user", "assistant", "tool", "model"]


class InlineData(msgspec.Struct):
    mimeType: str  # noqa: N815 (Gemini's field names)
    data: str


class GeminiPart(msgspec.Struct, omit_defaults=True):
    text: str | None = None
    inlineData: InlineData | None = None  # noqa: N815


class Message(msgspec.Struct, omit_defaults=True):
    role: Role
    content: str | list[Part] | None = None
    tool_call_id: str | None = None
    # Gemini's content, instead of ``content`` (see Role).
    parts: list[GeminiPart] | None = None


class ChatSettings(msgspec.Struct):
    model: str
    prompt: str | None = None
    temperature: float | None = None
    contextLength: int | None = None  # noqa: N815 (chatbot-ui's field names)
    includeProfileContext: bool | None = None  # noqa: N815
    includeWorkspaceInstructions: bool | None = None  # noqa: N815
    embeddingsProvider: str | None = None  # noqa: N815


class ChatRequest(msgspec.Struct):
    chatSettings: ChatSettings  # noqa: N815
    messages: list[Message]
    customModelId: str | None = None  # noqa: N815


_decoder = msgspec.json.Decoder(ChatRequest)
NESTED_TOO_DEEPLY = "The request body nests JSON arrays or objects too deeply."


def decode_chat_request(body: bytes) -> ChatRequest:
    """Decode a request body whatever its Content-Type; errors name the offending field."""
    if not body:
        raise RequestInvalid(
            "The request body is empty: send a JSON object with chatSettings and messages."
        )
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise RequestInvalid(f"Invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise RequestInvalid(f"The request body is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise RequestInvalid("The request body is not valid UTF-8 JSON.") from exc
    except RecursionError as exc:
        raise RequestInvalid(NESTED_TOO_DEEPLY) from exc
