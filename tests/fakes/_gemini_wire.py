"""What the fake Gemini upstream says: response chunks, the SSE and array framings, errors.

Google writes JSON its own way: a space after each colon, none after commas, in streams;
bodies (``generateContent`` and every error) pretty-printed with two-space indents. With
``alt=sse`` every chunk is ``data: <json>`` ended by ``\\r\\n\\r\\n`` and there is no
``[DONE]``: the stream just ends. Without it, ``streamGenerateContent`` answers one JSON array
whose elements arrive one by one.

Every chunk carries ``usageMetadata`` with the counts so far; the last one carries
``finishReason`` (``STOP`` or ``MAX_TOKENS``) with the last piece, so its usage is the total.
A reply that calls a function is one chunk: the ``functionCall`` part, whole, and ``STOP``.
Errors: ``{"error":{"code","message","status","details"?}}``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from tests.fakes._gemini_validate import Violation, field
from tests.fakes._text import count_tokens

STATUSES: Final[Mapping[int, str]] = MappingProxyType(
    {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }
)
JSON_TYPE: Final = "application/json; charset=UTF-8"
KEY_INVALID: Final = "API key not valid. Please pass a valid API key."
NO_KEY: Final = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
QUOTA: Final = (
    "You exceeded your current quota, please check your plan and billing details. For more"
    " information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
INTERNAL: Final = (
    "An internal error has occurred. Please retry or report in"
    " https://developers.generativeai.google/guide/troubleshooting"
)
OVERLOADED: Final = "The model is overloaded. Please try again later."
_QUOTA_METRIC: Final = "generativelanguage.googleapis.com/generate_content_free_tier_requests"


def stream_json(value: object) -> str:
    return json.dumps(value, separators=(",", ": "), ensure_ascii=False)


def pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def error_body(code: int, message: str, details: list[dict[str, Any]] | None = None) -> str:
    error: dict[str, Any] = {"code": code, "message": message, "status": STATUSES[code]}
    if details is not None:
        error["details"] = details
    return pretty({"error": error}) + "\n"


def key_invalid_details() -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": KEY_INVALID,
        },
    ]


def bad_request_details(violations: list[Violation]) -> list[dict[str, Any]]:
    return [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}]


def quota_details(model: str, retry_after: int) -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": _QUOTA_METRIC,
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": "10",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"},
    ]


def not_found_message(model: str, method: str) -> str:
    return (
        f"models/{model} is not found for API version v1beta, or is not supported for"
        f" {method}. Call ListModels to see the list of available models and their supported"
        " methods."
    )


def parts_text(content: object) -> str:
    if not isinstance(content, Mapping) or not isinstance(content.get("parts"), list):
        return ""
    return "".join(
        part["text"]
        for part in content["parts"]
        if isinstance(part, Mapping) and isinstance(part.get("text"), str)
    )


def prompt_tokens(body: Mapping[str, Any]) -> int:
    total = count_tokens(parts_text(field(body, "systemInstruction")))
    return total + sum(count_tokens(parts_text(content)) for content in body["contents"])


def max_output_tokens(body: Mapping[str, Any]) -> int | None:
    config = field(body, "generationConfig")
    if not isinstance(config, Mapping):
        return None
    limit = field(config, "maxOutputTokens")
    return int(limit) if isinstance(limit, int | float) else None


class GeminiChunks:
    """The ``GenerateContentResponse`` objects of one reply, cumulative usage in each."""

    def __init__(
        self,
        model: str,
        prompt: int,
        truncated: bool,
        call: dict[str, Any] | None = None,
        *,
        cached: int | None = None,
        thoughts: int | None = None,
    ) -> None:
        self._model = model
        self._prompt = prompt + (cached or 0)
        self._text_prompt = prompt
        self._cached = cached
        self._thoughts = thoughts
        # The last chunk's usageMetadata, kept up to date (the same dict throughout).
        self.usage: dict[str, Any] = {}
        self._finish = "MAX_TOKENS" if truncated else "STOP"
        self._response_id = secrets.token_urlsafe(16)
        self._sent = 0
        self._call = call  # the functionCall part the reply is, sent in place of its text

    def chunk(self, text: str, *, last: bool, pieces: int = 1) -> dict[str, Any]:
        self._sent += pieces if text else 0
        parts: list[dict[str, Any]] = [{"text": text}]
        if self._call is not None:
            parts = [self._call]
            self._sent += count_tokens(stream_json(self._call["functionCall"]["args"]))
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if last:
            candidate["finishReason"] = self._finish
        candidate["index"] = 0
        meta: dict[str, Any] = {
            "promptTokenCount": self._prompt,
            "candidatesTokenCount": self._sent,
            "totalTokenCount": self._prompt + self._sent + (self._thoughts or 0),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self._text_prompt}],
        }
        if self._cached is not None:
            meta["cachedContentTokenCount"] = self._cached
        if self._thoughts is not None:
            meta["thoughtsTokenCount"] = self._thoughts
        self.usage.clear()
        self.usage.update(meta)
        return {
            "candidates": [candidate],
            "usageMetadata": meta,
            "modelVersion": self._model,
            "responseId": self._response_id,
        }


class SseFraming:
    """``alt=sse``: one ``data:`` event per chunk, ended by ``\\r\\n\\r\\n``."""

    def __init__(self, chunks: GeminiChunks) -> None:
        self._chunks = chunks

    def opening(self) -> bytes:
        return b""

    def piece(self, text: str, *, last: bool) -> bytes:
        data = stream_json(self._chunks.chunk(text, last=last))
        return f"data: {data}\r\n\r\n".encode()

    def closing(self) -> bytes:
        return b""

    def error(self) -> bytes:
        return b""


class ArrayFraming:
    """No ``alt``: one JSON array, each pretty-printed element sent as it is made."""

    def __init__(self, chunks: GeminiChunks) -> None:
        self._chunks = chunks
        self._first = True

    def opening(self) -> bytes:
        return b"["

    def piece(self, text: str, *, last: bool) -> bytes:
        separator = "" if self._first else ",\r\n"
        self._first = False
        return (separator + pretty(self._chunks.chunk(text, last=last))).encode()

    def closing(self) -> bytes:
        return b"]"

    def error(self) -> bytes:
        return b""


def model_card(model: str) -> dict[str, Any]:
    """One entry of ``GET /v1beta/models``."""
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("-", " ").title(),
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def pieces_or_empty(pieces: Sequence[str]) -> list[str]:
    """The last chunk carries the finish reason, so an empty reply still sends one chunk."""
    return list(pieces) or [""]
