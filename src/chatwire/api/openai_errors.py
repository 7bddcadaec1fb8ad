"""Errors in OpenAI's shape, for the /v1 API: ``{"error": {"message", "type", "param", "code"}}``.

Standard clients pick their exception class by status (the openai SDK: 400 BadRequestError,
401 AuthenticationError, 404 NotFoundError, 429 RateLimitError, ...), so the status is the
one that matters; ``type`` and ``code`` follow OpenAI's own values for the same cases.
"""

from __future__ import annotations

from typing import Any

from chatwire.errors import (
    AuthenticationRequired,
    ChatwireError,
    KeyMissing,
    ModelNotAllowed,
    NotFound,
    QuotaExceeded,
    ResponseNotFound,
    UnknownURL,
    UpstreamKeyInvalid,
)

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(error: ChatwireError) -> dict[str, Any]:
    param: str | None = None
    code: str | None
    if isinstance(error, ResponseNotFound):
        code = "response_not_found"
        param = error.param
    elif isinstance(error, ModelNotAllowed):
        code = "model_not_allowed"
        param = "model"
    elif isinstance(error, AuthenticationRequired):
        code = "invalid_api_key"
    elif isinstance(error, NotFound):
        code = "model_not_found"
    elif isinstance(error, UnknownURL):
        code = "unknown_url"
    elif isinstance(error, UpstreamKeyInvalid | KeyMissing):
        code = (
            "provider_key_invalid"
            if isinstance(error, UpstreamKeyInvalid)
            else "provider_key_missing"
        )
    elif isinstance(error, QuotaExceeded):
        # OpenAI's own answer to an account out of credit (its SDK's RateLimitError).
        return {
            "error": {
                "message": error.message,
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        }
    elif error.status == 429:
        code = "rate_limit_exceeded"
    else:
        code = None
    kind = _TYPES.get(error.status, "api_error" if error.status < 500 else "server_error")
    return {"error": {"message": error.message, "type": kind, "param": param, "code": code}}
