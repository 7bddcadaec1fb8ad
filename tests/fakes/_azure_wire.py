"""Azure OpenAI's own answers, where they differ from OpenAI's.

Azure routes ``/openai/deployments/{deployment}/chat/completions?api-version=...`` and
authenticates with an ``api-key`` header. Its own errors are compact
``{"error":{"code","message"}}``; the model's own complaints (body validation) come back in
OpenAI's shape. Facts from public issue threads quoting Azure's answers:

- no ``api-version``: 404 ``{"error":{"code":"404","message":"Resource not found"}}``;
- an ``api-version`` it does not know: 400 ``BadRequest`` "API version not supported";
- a missing or wrong key: 401, code "401", "Access denied due to invalid subscription key...";
- an unknown deployment: 404 ``DeploymentNotFound``;
- throttling: 429, code "429", "Requests to the ChatCompletions_Create Operation under Azure
  OpenAI API version ... Please retry after N seconds ...", with ``retry-after``.
"""

from __future__ import annotations

import json
from typing import Final

API_VERSIONS: Final = frozenset(
    {
        "2023-05-15",
        "2023-06-01-preview",
        "2023-07-01-preview",
        "2023-12-01-preview",
        "2024-02-01",
        "2024-02-15-preview",
        "2024-03-01-preview",
        "2024-04-01-preview",
        "2024-05-01-preview",
        "2024-06-01",
        "2024-08-01-preview",
        "2024-10-21",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
RESOURCE_NOT_FOUND: Final = ("404", "Resource not found")
VERSION_NOT_SUPPORTED: Final = ("BadRequest", "API version not supported")
ACCESS_DENIED: Final = (
    "401",
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide"
    " a valid key for an active subscription and use a correct regional API endpoint for your"
    " resource.",
)
DEPLOYMENT_NOT_FOUND: Final = (
    "DeploymentNotFound",
    "The API deployment for this resource does not exist. If you created the deployment within"
    " the last 5 minutes, please wait a moment and try again.",
)
UNAVAILABLE: Final = (
    "ServiceUnavailable",
    "The service is temporarily unable to process your request. Please try again later.",
)


def error_body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":"))


def throttled(api_version: str, retry_after: int) -> tuple[str, str]:
    return (
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version"
        f" {api_version} have exceeded token rate limit of your current OpenAI S0 pricing tier."
        f" Please retry after {retry_after} seconds. Please go here:"
        " https://aka.ms/oai/quotaincrease if you would like to further increase the default"
        " rate limit.",
    )


def server_error(request_id: str) -> str:
    return (
        "The server had an error processing your request. Sorry about that! You can retry your"
        " request, or contact us through an Azure support request at:"
        " https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this error."
        f" (Please include the request ID {request_id} in your email.)"
    )
