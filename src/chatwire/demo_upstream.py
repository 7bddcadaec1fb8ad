"""The upstream of ``chatwire demo``: a small fake Mistral, so the demo needs no key and no
network.

It answers ``POST /v1/chat/completions``, streamed or not, with a canned reply that quotes the
last user message, ``GET /v1/models`` with a few model cards, and 401 in Mistral's words when
the key is wrong. That is all the demo needs; the fakes of every provider with their faults
and validation are test doubles and live with the tests (``tests/fakes``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import socket
import time
from typing import Any, Final

from aiohttp import web

MODELS: Final = ("mistral-small-latest", "mistral-medium-latest", "mistral-large-latest")
_PIECE: Final = re.compile(r"\s*\S+")


class DemoMistral:
    """The fake Mistral on a socket the caller bound (so the port is known before it runs)."""

    def __init__(self, api_key: str, *, first_token_delay: float, token_delay: float) -> None:
        self._authorization = f"Bearer {api_key}".encode()
        self._first_token_delay = first_token_delay
        self._token_delay = token_delay
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        # A stream still going when the demo stops is cut after half a second.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)

    async def start(self, sock: socket.socket) -> None:
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, self._authorization)

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthorized()
        cards = [{"id": m, "object": "model", "owned_by": "mistralai"} for m in MODELS]
        return web.json_response({"object": "list", "data": cards})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _unauthorized()
        try:
            body = json.loads(await request.read())
            model, messages = str(body["model"]), list(body["messages"])
        except (ValueError, TypeError, KeyError):
            return web.json_response(
                {"object": "error", "message": "model and messages are required"}, status=422
            )
        pieces = _PIECE.findall(_reply(messages))
        usage = {
            "prompt_tokens": sum(len(_PIECE.findall(_text(m))) for m in messages),
            "completion_tokens": len(pieces),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        await asyncio.sleep(self._first_token_delay)
        if body.get("stream") is not True:
            return web.json_response(_completion(model, "".join(pieces), usage))
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        chunk = _Chunks(model)
        await resp.write(chunk({"role": "assistant", "content": ""}))
        for number, piece in enumerate(pieces, 1):
            if number > 1:
                await asyncio.sleep(self._token_delay)
            if number < len(pieces):
                await resp.write(chunk({"content": piece}))
            else:
                await resp.write(chunk({"content": piece}, finish_reason="stop", usage=usage))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


class _Chunks:
    """The ``chat.completion.chunk`` events of one stream, as Mistral frames them."""

    def __init__(self, model: str) -> None:
        self._head = {
            "id": secrets.token_hex(16),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def __call__(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        event: dict[str, Any] = {**self._head, "choices": [choice]}
        if usage is not None:
            event["usage"] = usage
        return f"data: {json.dumps(event)}\n\n".encode()


def _unauthorized() -> web.Response:
    return web.json_response(
        {"message": "Unauthorized", "request_id": secrets.token_hex(16)}, status=401
    )


def _completion(model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "tool_calls": None}
    return {
        "id": secrets.token_hex(16),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }


def _reply(messages: list[Any]) -> str:
    said = next((_text(m) for m in reversed(messages) if _role(m) == "user"), "")
    return (
        "Hello! I am the fake Mistral of chatwire's demo, streaming through chatwire "
        f"word by word. You said: {said or 'nothing'}"
    )


def _role(message: Any) -> object:
    return message.get("role") if isinstance(message, dict) else None


def _text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # typed parts: only the text ones say something
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(part for part in parts if isinstance(part, str))
    return content if isinstance(content, str) else ""
