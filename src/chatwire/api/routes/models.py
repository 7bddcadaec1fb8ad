"""GET /api/models: the models the caller can use right now, grouped by provider.

A provider's catalogue models are listed when its key is available (stored in the
caller's profile or set by the operator's environment); Azure models when the endpoint,
key and that model's deployment are all set; the caller's custom models always. Each entry
has chatbot-ui's LLM shape, so its model picker can use the list as is.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.providers.base import Fields, Provider
from chatwire.providers.resolve import ProfileView

router = APIRouter(prefix="/api", tags=["models"])


def _usable(provider: Provider, fields: Fields, model: str) -> bool:
    if provider.quirks.deployments:
        deployment = provider.quirks.deployments.get(model)
        return bool(
            deployment
            and fields.get(deployment)
            and fields.get("azure_openai_endpoint")
            and fields.get("azure_openai_api_key")
        )
    return provider.key_field is None or fields.get(provider.key_field) is not None


@router.get("/models")
async def available_models(
    user: CurrentUser, services: ServicesDep
) -> dict[str, list[dict[str, Any]]]:
    fields = ProfileView(services.overrides, await services.store.get_profile(user.id))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for name, models in services.catalogue.models.items():
        provider = services.providers.get(name)
        if provider is None or provider.uses_custom_models:
            continue
        usable = [
            {
                "modelId": model_id,
                "modelName": entry.label or model_id,
                "provider": name,
                "hostedId": model_id,
                "imageInput": entry.image_input,
                "maxContext": entry.context,
                "maxOutput": entry.max_output,
            }
            for model_id, entry in models.items()
            if not entry.retired and _usable(provider, fields, model_id)
        ]
        if usable:
            grouped[name] = usable
    custom = await services.store.list_custom_models(user.id)
    if custom:
        grouped["custom"] = [
            {
                "modelId": record.model_id,
                "modelName": record.name,
                "provider": "custom",
                "hostedId": str(record.id),
                "imageInput": False,
                "maxContext": record.context_length,
                "maxOutput": None,
            }
            for record in custom
        ]
    return grouped
