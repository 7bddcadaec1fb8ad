"""What the fake Mistral upstream says: reply text, stream chunks and error bodies.

Error bodies by ``error_shape``, the generations Mistral has used (mistral-wire.md):

- 401: 0 ``{"message":"Unauthorized","request_id":<hex>}``; 1 and 2 ``{"detail":"Unauthorized"}``.
- 422: 0 an error object whose ``message`` is ``{"detail":[...]}``; 1 the same ``message``
  as a JSON string, type ``internal_error_proxy``, code "1000"; 2 bare ``{"detail":[...]}``.
- 429: 0 and 2 ``{"message":"Requests rate limit exceeded"}``; 1 ``rate_limited``, code "1300".
- 500: 0 ``internal_server_error`` error object; 1 ``internal_error_proxy``, code "1000";
  2 the plain text ``Internal Server Error``.

400 (invalid model, message order) and 503 have one shape each.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from tests.fakes._mistral_validate import ErrorEntry, ServingProblem
from tests.fakes._text import compact as compact  # re-exported: the chunk JSON style
from tests.fakes._text import echo, random_id
from tests.fakes._text import message_text as message_text
from tests.fakes._text import split_pieces as split_pieces

ErrorShape = int

CONTEXT_LENGTHS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "mistral-large-latest": 131072,
        "mistral-medium-latest": 131072,
        "mistral-small-latest": 262144,
        "codestral-latest": 131072,
        "ministral-3b-latest": 262144,
        "ministral-8b-latest": 262144,
        "ministral-14b-latest": 262144,
        "mistral-tiny": 32768,
    }
)


def new_id() -> str:
    """A Mistral object or request id: 32 lower-case hex digits."""
    return secrets.token_hex(16)


def echo_reply(messages: Sequence[Mapping[str, Any]]) -> str:
    """The default reply: it names the last user message, and starts with no whitespace."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return echo(message_text(message.get("content")))
    return echo("")


def usage(messages: Sequence[Mapping[str, Any]], completion_tokens: int) -> dict[str, int]:
    """Deterministic token counts: one prompt token per piece of each message."""
    prompt = sum(len(split_pieces(message_text(m.get("content")))) for m in messages)
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion_tokens,
        "completion_tokens": completion_tokens,
    }


def sse_event(data: str) -> bytes:
    """One data-only server-sent event."""
    return f"data: {data}\n\n".encode()


DONE_EVENT: Final = sse_event("[DONE]")


def chunk_event(
    *,
    chunk_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    usage_counts: dict[str, int] | None = None,
) -> bytes:
    """A ``chat.completion.chunk`` event; usage only on the last one."""
    chunk: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage_counts is not None:
        chunk["usage"] = usage_counts
    return sse_event(compact(chunk))


def completion_body(
    *,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    usage_counts: dict[str, int],
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` object; with ``tool_calls``, ``content`` is ``""``."""
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "tool_calls": tool_calls, "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_counts,
    }


def tool_call(name: str, arguments: str) -> dict[str, Any]:
    """One tool call as Mistral sends it: a 9-character id, no ``type``, no ``index``.

    That is what Mistral answered in a capture from January 2026 (vercel/ai,
    ``packages/mistral/src/__fixtures__/mistral-tool-call.chunks.txt``), stream and JSON alike;
    its clients fill in ``index`` themselves (``ToolCall.index`` defaults to 0).
    """
    return {"id": random_id(9), "function": {"name": name, "arguments": arguments}}


def _error_object(message: object, kind: str, code: str | None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


def unauthorized_body(shape: ErrorShape) -> dict[str, Any]:
    if shape == 0:
        return {"message": "Unauthorized", "request_id": new_id()}
    return {"detail": "Unauthorized"}


def validation_body(shape: ErrorShape, detail: list[ErrorEntry]) -> dict[str, Any]:
    if shape == 0:
        return _error_object({"detail": detail}, "invalid_request_error", None)
    if shape == 1:
        return _error_object(compact({"detail": detail}), "internal_error_proxy", "1000")
    return {"detail": detail}


def rate_limit_body(shape: ErrorShape) -> dict[str, Any]:
    if shape == 1:
        return _error_object("Rate limit exceeded", "rate_limited", "1300")
    return {"message": "Requests rate limit exceeded"}


def server_error_body(shape: ErrorShape) -> dict[str, Any] | str:
    """The 500 body; shape 2 is plain text, as a failing gateway sends it."""
    if shape == 0:
        return _error_object("Internal server error", "internal_server_error", None)
    if shape == 1:
        return _error_object("Internal server error", "internal_error_proxy", "1000")
    return "Internal Server Error"


def unavailable_body() -> dict[str, Any]:
    return _error_object("Service unavailable", "service_unavailable", None)


def invalid_model_body(model: str) -> dict[str, Any]:
    body = _error_object(f"Invalid model: {model}", "invalid_model", "1500")
    body["raw_status_code"] = 400
    return body


def role_order_body(last_role: str) -> dict[str, Any]:
    message = (
        "Expected last role User or Tool (or Assistant with prefix True) for serving"
        f" but got {last_role}"
    )
    return _error_object(message, "invalid_request_error", None)


def serving_error_body(problem: ServingProblem) -> dict[str, Any]:
    """A 400 from Mistral's checks of the conversation (tool calls, role order)."""
    body = _error_object(problem.message, problem.kind, problem.code)
    if problem.raw_status_code:
        body["raw_status_code"] = 400
    return body


def rate_limit_headers(remaining_requests: int = 59) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers Mistral puts on chat responses."""
    return {
        "x-ratelimit-limit-req-minute": "60",
        "x-ratelimit-remaining-req-minute": str(remaining_requests),
        "x-ratelimit-limit-tokens-minute": "500000",
        "x-ratelimit-remaining-tokens-minute": str(remaining_requests * 8000),
    }


def model_card(model: str) -> dict[str, Any]:
    """One entry of ``GET /v1/models``."""
    return {
        "id": model,
        "object": "model",
        "created": 1_700_000_000,
        "owned_by": "mistralai",
        "capabilities": {
            "completion_chat": True,
            "completion_fim": model.startswith("codestral"),
            "function_calling": True,
            "fine_tuning": False,
            "vision": False,
            "classification": False,
        },
        "name": model,
        "description": f"Fake {model}",
        "max_context_length": CONTEXT_LENGTHS.get(model, 32768),
        "aliases": [],
        "deprecation": None,
        "default_model_temperature": 0.7,
        "type": "base",
    }
