"""chatbot-ui's chat route: ``POST /api/chat/{provider}``, the reply streamed as plain text.

The body is chatbot-ui's (``api.schemas.ChatRequest``): its chat settings are the user's
preferences for the model (``ChatCall.from_chat_settings``), its messages OpenAI's, or, as the
chatbot-ui browser sends them to its google route, Gemini's (``{role: "user" | "model",
parts: [{text} | {inlineData}]}``), taken on every route. The reply is the concatenation of
the text deltas, sent as it arrives; the response starts only with the first real text
(leading whitespace trimmed), so every failure before it is still a proper error status with
``{"message"}``. A failure after it can no longer change the status: the response is cut
without a clean end (``StreamAborted``), so the client's reader fails instead of keeping a
silently truncated reply.
"""

from __future__ import annotations

from typing import Any

from chatwire.api.asgi import Send, send_error
from chatwire.api.schemas import ImagePart, ImageURL, Message, TextPart, decode_chat_request
from chatwire.dialects.base import Request
from chatwire.errors import ChatwireError, StreamAborted
from chatwire.gateway.call import ChatCall
from chatwire.timing import Timing

PREFIX = "/api/chat/"


class ChatbotUI:
    route = "/api/chat/<provider>"
    reads_text = True

    def decode(self, path: str, body: bytes) -> Request:
        request = decode_chat_request(body)
        settings = request.chatSettings
        params: dict[str, Any] = {}
        if settings.temperature is not None:
            params["temperature"] = settings.temperature
        call = ChatCall(
            model=settings.model,
            messages=_openai_messages(request.messages),
            params=params,
            typed=True,
            from_chat_settings=True,
        )
        return Request(call, path[len(PREFIX) :], settings.model, request.customModelId)

    def output(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        request: Request,
        reader: Any,
        headers: list[tuple[bytes, bytes]],
    ) -> TextOutput:
        return TextOutput(send, rid, timing, headers)

    async def send_error(
        self, send: Send, error: ChatwireError, rid: bytes, timing: Timing
    ) -> None:
        await send_error(send, error, rid, timing)


def _openai_messages(messages: list[Message]) -> list[Message]:
    """Gemini-shaped messages (role ``model``, ``parts``) as OpenAI's."""
    for message in messages:
        if message.parts is not None or message.role == "model":
            break
    else:
        return messages
    return [_from_gemini(m) if m.parts is not None or m.role == "model" else m for m in messages]


def _from_gemini(message: Message) -> Message:
    role = "assistant" if message.role == "model" else message.role
    content = message.content
    if message.parts is not None and content is None:
        found: list[TextPart | ImagePart] = []
        for part in message.parts:
            if part.text is not None:
                found.append(TextPart(part.text))
            elif part.inlineData is not None:
                data = part.inlineData
                url = f"data:{data.mimeType};base64,{data.data}"
                found.append(ImagePart(ImageURL(url)))
        content = found
    return Message(role=role, content=content, tool_call_id=message.tool_call_id)


class TextOutput:
    __slots__ = ("_headers", "_rid", "_send", "_timing", "started")

    def __init__(
        self, send: Send, rid: bytes, timing: Timing, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._send = send
        self._rid = rid
        self._timing = timing
        self._headers = headers
        self.started = False

    async def _start(self) -> None:
        await self._send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"x-experimental-stream-data", b"false"),
                    (b"x-accel-buffering", b"no"),
                    (b"cache-control", b"no-cache"),
                    (b"x-request-id", self._rid),
                    self._timing.header(),
                    *self._headers,
                ],
            }
        )
        self.started = True

    async def write(self, text: str) -> None:
        if not self.started:
            # Leading whitespace of the reply is trimmed, up to the first real text.
            text = text.lstrip()
            if not text:
                return
            await self._start()
        await self._send({"type": "http.response.body", "body": text.encode(), "more_body": True})

    async def end(self) -> None:
        if not self.started:
            await self._start()
        # The reply is complete: the client gets its end now, whatever the upstream does.
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def fail(self, error: ChatwireError) -> None:
        # Not chained: the upstream's own words (a quoted key, say) stay out of the trace.
        raise StreamAborted(error.message) from None
