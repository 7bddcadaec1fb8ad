"""A fake Mistral chat API on real TCP, faithful to mistral-wire.md, for tests and local runs.

``FakeMistral`` serves ``POST /v1/chat/completions`` and ``GET /v1/models`` with aiohttp.
A chat request is checked in this order, and the first failure answers:

1. ``Authorization: Bearer <api_key>``, else 401;
2. the body is a JSON object with only Mistral's fields, messages with only their role's
   fields, else 422 (see ``_mistral_validate`` for the ``loc`` of each case);
3. a fault model (below) answers with its fault;
4. a model neither in ``models`` nor a fault model: 400 ``invalid_model``;
5. with more than one message, the last must be user, tool or assistant with prefix=true,
   else 400 with Mistral's message-order body;
6. the tool-call rules of the conversation (``serving_problem`` in ``_mistral_validate``):
   tool messages only after an assistant or tool message and before an assistant or tool
   message, one tool message per call, tool call ids of 9 letters and digits, else 400;
7. the reply, streamed (``stream: true``) or as one ``chat.completion``: a tool call or text.

Error bodies follow ``error_shape`` (0, 1 or 2; table in ``_mistral_replies``).

The reply is ``reply`` when given, else ``"Hello! You said: <last user text>"``;
``expected_reply`` and ``expected_pieces`` tell a test exactly what will be sent. It is
streamed in word pieces that keep their leading space (``split_pieces``), cut to
``max_tokens`` pieces with ``finish_reason: "length"``. ``first_token_delay`` comes before the
first content chunk, ``token_delay`` between content chunks.

Tool calls (``_tool_calls``): a request with function ``tools``, ``tool_choice`` other than
``none`` and a user message last gets one call, of the first tool or the one ``tool_choice``
names, with arguments derived from its schema (``expected_tool_call(body)`` tells which).
As Mistral sends it (docs.mistral.ai/capabilities/function_calling; a captured stream in
vercel/ai's fixtures): ``{"id": <9 letters and digits>, "function": {"name", "arguments":
<JSON string>}}``, no ``type`` and no ``index``, the whole call in one chunk
(``{"content": null, "tool_calls": [...]}``) after the role chunk, with
``finish_reason: "tool_calls"`` and usage; not streamed, ``message.tool_calls`` with
``content: ""``. A tool message last gets the text ``"The tool said: <its content>"``.

Fault models (accepted whatever ``models`` says):

- ``fake-429``: 429, ``Retry-After: 7`` and the four ``x-ratelimit-*`` headers.
- ``fake-500``: 500; shape 2 sends the text ``Internal Server Error``.
- ``fake-503``: 503 ``service_unavailable``.
- ``fake-drop``: 200, the role chunk and the first two content chunks, then the TCP
  connection is aborted mid-body (no end of the chunked body, no ``[DONE]``). Not streamed:
  half of a ``Content-Length`` body, then the abort.
- ``fake-stall``: never answers, not even headers, until the client goes away or ``stop()``.
- ``fake-stall-mid``: like ``fake-drop`` but stalls instead of aborting.
- ``fake-split-utf8``: streams ``reply`` or ``SPLIT_UTF8_REPLY``, each event in two writes
  20 ms apart, cut inside its first multi-byte character (mid-event if it has none).
- ``fake-slow``: a normal reply with at least 50 ms between content chunks.

Embeddings (``POST /v1/embeddings``) are served as ``_mistral_embeddings`` says.

Lifecycle, counters and request recording are shared with the other fakes (``_server``).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any, Final, TypedDict, Unpack

from aiohttp import web

from tests.fakes import _mistral_embeddings as embeddings
from tests.fakes import _mistral_replies as replies
from tests.fakes._faults import (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    FAULT_MODELS,
    FAULT_SLOW,
    FAULT_SPLIT_UTF8,
    FAULT_STALL,
    FAULT_STALL_MID,
    RETRY_AFTER_SECONDS,
    SLOW_TOKEN_DELAY,
    SPLIT_UTF8_REPLY,
)
from tests.fakes._mistral_send import Reply, complete_reply, forever, stream_reply
from tests.fakes._mistral_validate import (
    ErrorEntry,
    json_error,
    serving_problem,
    validate_chat_body,
)
from tests.fakes._run import serve
from tests.fakes._server import RecordedRequest
from tests.fakes._text import count_tokens
from tests.fakes._tool_calls import ToolCallingServer

__all__ = [
    "DEFAULT_MODELS",
    "FAULT_429",
    "FAULT_500",
    "FAULT_503",
    "FAULT_DROP",
    "FAULT_MODELS",
    "FAULT_SLOW",
    "FAULT_SPLIT_UTF8",
    "FAULT_STALL",
    "FAULT_STALL_MID",
    "RETRY_AFTER_SECONDS",
    "SLOW_TOKEN_DELAY",
    "SPLIT_UTF8_REPLY",
    "FakeMistral",
    "FakeMistralOptions",
    "RecordedRequest",
    "run",
]

DEFAULT_MODELS: Final = (*replies.CONTEXT_LENGTHS, *FAULT_MODELS)


class FakeMistralOptions(TypedDict, total=False):
    api_key: str
    models: Iterable[str]
    reply: str | None
    first_token_delay: float
    token_delay: float
    error_shape: int


class FakeMistral(ToolCallingServer):
    """A Mistral upstream on a real socket; see the module docstring for its behaviour."""

    def __init__(
        self,
        *,
        api_key: str = "fake-mistral-key",
        models: Iterable[str] = DEFAULT_MODELS,
        reply: str | None = None,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        error_shape: int = 0,
    ) -> None:
        if error_shape not in (0, 1, 2):
            raise ValueError(f"error_shape must be 0, 1 or 2, not {error_shape!r}")
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            first_token_delay=first_token_delay,
            token_delay=token_delay,
        )
        self.error_shape = error_shape
        self._failures: list[tuple[int, str | None]] = []
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)
        embeddings.install(self)

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` chat requests with ``status`` (429, 500 or 503, in
        Mistral's shape for it, with ``retry_after`` as Retry-After), then as usual."""
        if status not in (429, 500, 503):
            raise ValueError(f"fail_next takes 429, 500 or 503, not {status!r}")
        self._failures += [(status, retry_after)] * times

    def _failure(self) -> web.Response:
        status, retry_after = self._failures.pop(0)
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        if status == 429:
            return self._json(429, replies.rate_limit_body(self.error_shape), headers)
        if status == 503:
            return self._json(503, replies.unavailable_body(), headers)
        error = replies.server_error_body(self.error_shape)
        if isinstance(error, str):
            return web.Response(status=500, text=error, content_type="text/plain", headers=headers)
        return self._json(500, error, headers)

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.api_key}".encode())

    def _json(
        self, status: int, body: object, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.json_response(body, status=status, headers=headers, dumps=replies.compact)

    async def _read(self, request: web.Request) -> tuple[Any, ErrorEntry | None]:
        """Records the request; returns its JSON body, or the 422 entry when it is not JSON."""
        body, problem = await self._record(request)
        if isinstance(problem, json.JSONDecodeError):
            return body, json_error(problem.pos, problem.msg)
        if problem is not None:  # bytes that are not UTF-8
            return body, json_error(0, str(problem))
        return body, None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if not self._authorized(request):
            return self._json(401, replies.unauthorized_body(self.error_shape))
        cards = [replies.model_card(model) for model in self.models]
        return self._json(200, {"object": "list", "data": cards})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, json_problem = await self._read(request)
        if not self._authorized(request):
            return self._json(401, replies.unauthorized_body(self.error_shape))
        errors = [json_problem] if json_problem is not None else validate_chat_body(body)
        if errors:
            return self._json(422, replies.validation_body(self.error_shape, errors))
        if self._failures:
            return self._failure()
        model: str = body["model"]
        refusal = self._refusal(model, body["messages"])
        if refusal is not None:
            return refusal
        if model == FAULT_STALL:
            await forever()
        call = self.planned(body)
        plan = self._plan(model, body["messages"], None if call else body.get("max_tokens"))
        if call is None:
            reply = Reply(
                model=model,
                pieces=plan.pieces,
                finish_reason="length" if plan.truncated else "stop",
                usage=replies.usage(body["messages"], len(plan.pieces)),
                first_token_delay=plan.pace.first_token_delay,
                token_delay=plan.pace.token_delay,
            )
        else:
            # Mistral's arguments JSON has spaces after ':' and ','.
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            reply = Reply(
                model=model,
                pieces=[arguments],
                finish_reason="tool_calls",
                usage=replies.usage(body["messages"], count_tokens(arguments)),
                first_token_delay=plan.pace.first_token_delay,
                token_delay=plan.pace.token_delay,
                tool_call=replies.tool_call(call.name, arguments),
            )
        self.usages.append(reply.usage)
        if body.get("stream") is True:
            resp = await stream_reply(
                request,
                reply,
                replies.rate_limit_headers(),
                split_writes=plan.split_writes,
                halt=plan.halt,
            )
            self.streams_completed += 1
            return resp
        return await complete_reply(request, reply, replies.rate_limit_headers(), halt=plan.halt)

    def _refusal(self, model: str, messages: list[dict[str, Any]]) -> web.Response | None:
        if model == FAULT_429:
            headers = {
                "Retry-After": str(RETRY_AFTER_SECONDS),
                **replies.rate_limit_headers(remaining_requests=0),
            }
            return self._json(429, replies.rate_limit_body(self.error_shape), headers)
        if model == FAULT_500:
            error = replies.server_error_body(self.error_shape)
            if isinstance(error, str):
                return web.Response(status=500, text=error, content_type="text/plain")
            return self._json(500, error)
        if model == FAULT_503:
            return self._json(503, replies.unavailable_body())
        if model not in self.models and model not in FAULT_MODELS:
            return self._json(400, replies.invalid_model_body(model))
        last = messages[-1]
        if len(messages) > 1 and not (
            last["role"] in ("user", "tool")
            or (last["role"] == "assistant" and last.get("prefix") is True)
        ):
            return self._json(400, replies.role_order_body(last["role"]))
        problem = serving_problem(messages)
        if problem is not None:
            return self._json(400, replies.serving_error_body(problem))
        return None


def run(host: str, port: int, **options: Unpack[FakeMistralOptions]) -> None:
    """Serve until SIGINT or SIGTERM; prints the base URL once listening."""
    serve(lambda: FakeMistral(**options), host, port)
