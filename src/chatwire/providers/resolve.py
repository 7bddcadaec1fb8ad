"""Where a chat goes: the key, base URL and model for one request.

The key lookup order is explicit: the operator's environment variable (it overrides every
user's key, as in chatbot-ui), then the caller's stored key, else a 400 saying where to
set it. ``null`` and ``""`` both count as missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from chatwire.errors import KeyMissing, RequestInvalid
from chatwire.providers.base import Fields, Provider, Target
from chatwire.store.records import Profile

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest
    from chatwire.store.records import CustomModel


class ProfileView:
    """A profile seen through the operator's overrides (profile field -> value)."""

    __slots__ = ("_overrides", "_profile")

    def __init__(self, overrides: Mapping[str, str], profile: Profile) -> None:
        self._overrides = overrides
        self._profile = profile

    def get(self, name: str) -> str | None:
        return self._overrides.get(name) or self._profile.get(name)

    def from_operator(self, name: str) -> bool:
        return name in self._overrides


def _key(provider: Provider, fields: Fields) -> str:
    if provider.key_field is None:
        return ""
    key = fields.get(provider.key_field)
    if key is None:
        raise KeyMissing(provider.key_missing_message())
    return key


def _headers(provider: Provider, fields: Fields) -> dict[str, str]:
    headers = {}
    for header, name in provider.header_fields.items():
        value = fields.get(name)
        if value:
            headers[header] = value
    return headers


def by_key(
    provider: Provider, fields: Fields, request: ChatRequest, custom: CustomModel | None
) -> Target:
    """The common case: the provider's base URL, the key from its profile field."""
    return Target(
        base_url=provider.base_url,
        key=_key(provider, fields),
        model=request.chatSettings.model,
        headers=_headers(provider, fields),
    )


def azure(
    provider: Provider, fields: Fields, request: ChatRequest, custom: CustomModel | None
) -> Target:
    """Azure OpenAI: the user's endpoint, and the deployment configured for the model."""
    model = request.chatSettings.model
    deployment_field = provider.quirks.deployments.get(model)
    if deployment_field is None:
        known = ", ".join(provider.quirks.deployments)
        raise RequestInvalid(f"Model not found: Azure OpenAI serves {known} here, not '{model}'.")
    key = fields.get("azure_openai_api_key")
    endpoint = fields.get("azure_openai_endpoint")
    deployment = fields.get(deployment_field)
    if not (key and endpoint and deployment):
        missing = [
            label
            for label, value in (
                ("endpoint", endpoint),
                ("API key", key),
                (f"{model} deployment", deployment),
            )
            if not value
        ]
        raise RequestInvalid(
            "Azure resources not found: set the Azure OpenAI "
            + ", ".join(missing)
            + " in your profile settings."
        )
    if fields.from_operator("azure_openai_api_key") and not fields.from_operator(
        "azure_openai_endpoint"
    ):
        # The operator's key goes only to the operator's endpoint, never to one a user set.
        raise RequestInvalid(
            "Azure resources not found: the server's Azure OpenAI key is used only with the "
            "server's endpoint (AZURE_OPENAI_ENDPOINT), which is not set."
        )
    return Target(
        base_url=f"{endpoint.rstrip('/')}/openai/deployments/{quote(deployment, safe='')}",
        key=key,
        model=deployment,
        query=f"?api-version={provider.quirks.api_version}",
    )


def custom_model(
    provider: Provider, fields: Fields, request: ChatRequest, custom: CustomModel | None
) -> Target:
    """The caller's own OpenAI-compatible server, from the record named by customModelId."""
    if custom is None:
        raise RequestInvalid(
            "Custom model not found: send the id of one of your custom models as "
            "customModelId (GET /api/custom-models lists them)."
        )
    return Target(
        base_url=custom.base_url.rstrip("/"),
        key=custom.api_key,
        model=custom.model_id,
        max_tokens=custom_max_tokens(custom.context_length, request),
    )


def custom_max_tokens(context_length: int, request: ChatRequest) -> int:
    """Room left for the reply in the model's context.

    chatbot-ui sent no max_tokens to custom models and some servers then default to a
    handful of tokens. The prompt is estimated at one token per three characters (generous
    for most tokenizers) plus a little per message, and the reply gets what is left, at
    least 256 tokens so a long history still leaves a usable answer.
    """
    chars = 0
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            chars += len(content)
        elif content is not None:
            chars += sum(len(getattr(part, "text", "")) for part in content)
    estimate = chars // 3 + 8 * len(request.messages)
    return max(256, context_length - estimate) if context_length > 256 else context_length
