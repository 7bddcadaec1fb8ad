"""Which models a caller can use right now, and what a model name refers to.

A provider's catalogue models are usable when its key is available (stored in the caller's
profile or set by the operator's environment); Azure models when the endpoint, key and
that model's deployment are all set; Ollama's whenever the catalogue lists them; the
caller's custom models always. Retired models are never listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatwire.catalogue import ModelEntry
from chatwire.errors import NotFound, RequestInvalid
from chatwire.providers.base import Fields, Provider
from chatwire.services import Services


@dataclass(frozen=True, slots=True)
class Usable:
    provider: str
    model: str
    entry: ModelEntry


def usable(provider: Provider, fields: Fields, model: str) -> bool:
    if provider.quirks.deployments:
        deployment = provider.quirks.deployments.get(model)
        return bool(
            deployment
            and fields.get(deployment)
            and fields.get("azure_openai_endpoint")
            and fields.get("azure_openai_api_key")
        )
    return provider.key_field is None or fields.get(provider.key_field) is not None


def usable_models(services: Services, fields: Fields) -> list[Usable]:
    found = []
    for name, models in services.catalogue.models.items():
        provider = services.providers.get(name)
        if provider is None or provider.uses_custom_models:
            continue
        for model_id, entry in models.items():
            if not entry.retired and usable(provider, fields, model_id):
                found.append(Usable(name, model_id, entry))
    return found


def resolve_model_name(services: Services, name: str) -> tuple[Provider, str]:
    """``provider/model``, or a bare model id the catalogue gives to exactly one provider."""
    prefix, _, rest = name.partition("/")
    if rest and prefix in services.providers:
        return services.providers[prefix], rest
    owners = sorted(
        provider
        for provider, models in services.catalogue.models.items()
        if name in models and provider in services.providers and provider != "azure"
    )
    if not owners:
        raise NotFound(
            f"The model '{name[:200]}' does not exist or is not in the catalogue: "
            "name it as provider/model (GET /v1/models lists them)."
        )
    if len(owners) > 1:
        choices = " or ".join(f"{owner}/{name}" for owner in owners)
        raise RequestInvalid(f"The model '{name}' is ambiguous: use {choices}.")
    return services.providers[owners[0]], name
