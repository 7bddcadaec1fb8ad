"""Which models a caller can use right now.

A provider's catalogue models are usable when its key is available (stored in the caller's
profile or set by the operator's environment); a deployment's models when the endpoint, key
and that model's deployment are all set; a provider without a key whenever the catalogue
lists its models, and the models its own server lists (a local Ollama's pulled models,
``Services.discovered``); the caller's custom models always. Retired models are never listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatwire.catalogue import ModelEntry
from chatwire.gateway.resolve import ProfileView, usable
from chatwire.services import Services


@dataclass(frozen=True, slots=True)
class Usable:
    provider: str
    model: str
    entry: ModelEntry


async def usable_models(services: Services, profile: ProfileView) -> list[Usable]:
    found = []
    for name, provider in services.providers.items():
        if provider.uses_custom_models:
            continue
        models = services.catalogue.models.get(name, {})
        for model_id, entry in models.items():
            if not entry.retired and usable(provider, profile, model_id):
                found.append(Usable(name, model_id, entry))
        if provider.key is None or profile.get(provider.key) is not None:
            for model_id, entry in await services.discovered(provider):
                if model_id not in models:
                    found.append(Usable(name, model_id, models.get(model_id, entry)))
    return found
