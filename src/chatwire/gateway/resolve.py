"""Where a chat goes: the provider and model a name means, and the key, base URL and model
for one request.

The key lookup order is explicit: the operator's environment variable (it overrides every
user's value, as in chatbot-ui), then the caller's stored value, else a 400 saying where to
set it. ``null`` and ``""`` both count as missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from chatwire.errors import KeyMissing, NotFound, RequestInvalid
from chatwire.gateway.upstream import Target

if TYPE_CHECKING:
    from chatwire.catalogue import Catalogue
    from chatwire.gateway.call import ChatCall
    from chatwire.providers.declaration import Provider
    from chatwire.store.records import CustomModel, Profile


class ProfileView:
    """A profile seen through the operator's overrides (credential field -> value)."""

    __slots__ = ("_overrides", "_profile")

    def __init__(self, overrides: Mapping[str, str], profile: Profile) -> None:
        self._overrides = overrides
        self._profile = profile

    def get(self, name: str) -> str | None:
        return self._overrides.get(name) or self._profile.get(name)

    def from_operator(self, name: str) -> bool:
        return name in self._overrides


def model_named(
    providers: Mapping[str, Provider],
    catalogue: Catalogue,
    name: str,
    aliases: Mapping[str, str] | None = None,
) -> tuple[Provider, str]:
    """``provider/model``, or a bare model id the catalogue gives to exactly one provider;
    an operator's alias (``CHATWIRE_MODEL_ALIASES``) first stands for the name it maps to."""
    if aliases:
        name = aliases.get(name, name)
    prefix, _, rest = name.partition("/")
    if rest and prefix in providers:
        return providers[prefix], rest
    owners = sorted(
        provider
        for provider, models in catalogue.models.items()
        if name in models and provider in providers and not providers[provider].deployments
    )
    if not owners:
        raise NotFound(
            f"The model '{name[:200]}' does not exist or is not in the catalogue: "
            "name it as provider/model (GET /v1/models lists them)."
        )
    if len(owners) > 1:
        choices = " or ".join(f"{owner}/{name}" for owner in owners)
        raise RequestInvalid(f"The model '{name}' is ambiguous: use {choices}.")
    return providers[owners[0]], name


def usable(provider: Provider, profile: ProfileView, model: str) -> bool:
    """Whether the caller can use the provider's model now: its key (and, for a model served
    through a deployment, the deployment and the endpoint) is set."""
    if provider.deployments:
        deployment = provider.deployments.get(model)
        endpoint = next((c.field for c in provider.credentials if c.url), None)
        return bool(
            deployment
            and profile.get(deployment)
            and (endpoint is None or profile.get(endpoint))
            and (provider.key is None or profile.get(provider.key))
        )
    return provider.key is None or profile.get(provider.key) is not None


def target_for(
    provider: Provider, profile: ProfileView, call: ChatCall, custom: CustomModel | None
) -> Target:
    kind = provider.target
    if kind != "key":
        if kind == "azure":
            return _deployment(provider, profile, call.model)
        return _custom(call, custom)
    key = ""
    if provider.key is not None:
        found = profile.get(provider.key)
        if found is None:
            raise KeyMissing(provider.key_missing_message())
        key = found
    headers = {}
    if provider.headers:
        for header, name in provider.headers.items():
            value = profile.get(name)
            if value:
                headers[header] = value
    return Target(base_url=provider.base_url, key=key, model=call.model, headers=headers)


def _deployment(provider: Provider, profile: ProfileView, model: str) -> Target:
    """Azure OpenAI: the user's endpoint, and the deployment configured for the model."""
    deployment_field = provider.deployments.get(model)
    if deployment_field is None:
        known = ", ".join(provider.deployments)
        raise RequestInvalid(
            f"Model not found: {provider.label} serves {known} here, not '{model}'."
        )
    endpoint_field = next(c.field for c in provider.credentials if c.url)
    key_field = provider.key or ""
    key = profile.get(key_field)
    endpoint = profile.get(endpoint_field)
    deployment = profile.get(deployment_field)
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
            f"Azure resources not found: set the {provider.label} "
            + ", ".join(missing)
            + " in your profile settings."
        )
    if profile.from_operator(key_field) and not profile.from_operator(endpoint_field):
        # The operator's key goes only to the operator's endpoint, never to one a user set.
        variable = next(c.env for c in provider.credentials if c.field == endpoint_field)
        raise RequestInvalid(
            f"Azure resources not found: the server's {provider.label} key is used only with "
            f"the server's endpoint ({variable}), which is not set."
        )
    return Target(
        base_url=f"{endpoint.rstrip('/')}/openai/deployments/{quote(deployment, safe='')}",
        key=key,
        model=deployment,
        query=f"?api-version={provider.options.get('api_version', '')}",
        user_set=not profile.from_operator(endpoint_field),
    )


def _custom(call: ChatCall, custom: CustomModel | None) -> Target:
    """The caller's own OpenAI-compatible server, from their model record."""
    if custom is None:
        raise RequestInvalid(
            "Custom model not found: send the id of one of your custom models as "
            "customModelId (GET /api/custom-models lists them)."
        )
    return Target(
        base_url=custom.base_url.rstrip("/"),
        key=custom.api_key,
        model=custom.model_id,
        max_tokens=custom_max_tokens(custom.context_length, call.messages),
        user_set=True,
    )


def custom_max_tokens(context_length: int, messages: list[Any]) -> int:
    """Room left for the reply in the model's context.

    chatbot-ui sent no max_tokens to custom models and some servers then default to a
    handful of tokens. The prompt is estimated at one token per three characters (generous
    for most tokenizers) plus a little per message, and the reply gets what is left, at
    least 256 tokens so a long history still leaves a usable answer. Messages of shapes
    other than text parts (tool turns, audio...) count by the size of their JSON, so the
    estimate never drops to nothing.
    """
    chars = 0
    for message in messages:
        chars += _chars(message)
    estimate = chars // 3 + 8 * len(messages)
    return max(256, context_length - estimate) if context_length > 256 else context_length


def _chars(message: Any) -> int:
    content = message.get("content") if isinstance(message, dict) else message.content
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        texts = [
            p.get("text") if isinstance(p, dict) else getattr(p, "text", None) for p in content
        ]
        return sum(len(text) for text in texts if isinstance(text, str))
    return len(msgspec.json.encode(message)) if isinstance(message, dict) else 0
