"""GET /api/models: the chat models the caller can use right now (``availability``) and
its policies allow, grouped by provider, each in chatbot-ui's LLM shape so its model picker
can use the list as is (embedding models, which it cannot chat with, are left out:
/v1/models lists them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.availability import usable_models
from chatwire.gateway.resolve import ProfileView
from chatwire.routing.groups import ROUTE
from chatwire.team.access import may_use

router = APIRouter(prefix="/api", tags=["models"])


@router.get("/models")
async def available_models(
    user: CurrentUser, services: ServicesDep
) -> dict[str, list[dict[str, Any]]]:
    profile = ProfileView(services.overrides, await services.store.get_profile(user.id))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in await usable_models(services, profile):
        if item.entry.kind != "chat":
            continue  # chatbot-ui's model picker offers chat models only
        if not may_use(user, f"{item.provider}/{item.model}"):
            continue  # the caller's policies do not allow it
        grouped.setdefault(item.provider, []).append(
            {
                "modelId": item.model,
                "modelName": item.entry.label or item.model,
                "provider": item.provider,
                "hostedId": item.model,
                "imageInput": item.entry.image_input,
                "maxContext": item.entry.context,
                "maxOutput": item.entry.max_output,
            }
        )
    custom = [
        record
        for record in await services.store.list_custom_models(user.id)
        if may_use(user, f"custom/{record.model_id}")
    ]
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
    # The routes file's groups: chatbot-ui asks /api/chat/route with the group as the model.
    routed = [
        {
            "modelId": name,
            "modelName": group.label or name,
            "provider": ROUTE,
            "hostedId": name,
            "imageInput": False,
            "maxContext": None,
            "maxOutput": None,
        }
        for name, group in (services.routes or {}).items()
        if may_use(user, name)
    ]
    if routed:
        grouped[ROUTE] = routed
    return grouped
