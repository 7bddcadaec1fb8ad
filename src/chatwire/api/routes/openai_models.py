"""GET /v1/models: the caller's usable models, named ``provider/model``, in OpenAI's shape:
chat models and embedding models alike (these say they do not chat)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.availability import usable_models
from chatwire.errors import NotFound
from chatwire.gateway.resolve import ProfileView, model_named

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible API"])


def _model(
    provider: str,
    model: str,
    context: int | None = None,
    vision: bool = False,
    chats: bool = True,
) -> dict[str, Any]:
    """An entry as OpenAI lists models, and as Mistral does: its SDKs read each entry by its
    ``type`` ("base") and want its ``capabilities`` (an embedding model's: no chat, no
    functions; it answers /v1/embeddings)."""
    entry: dict[str, Any] = {
        "id": f"{provider}/{model}",
        "object": "model",
        "created": 0,
        "owned_by": provider,
        "type": "base",
        "capabilities": {
            "completion_chat": chats,
            "function_calling": chats,
            "vision": vision,
        },
    }
    if context is not None:
        entry["max_context_length"] = context
    return entry


@router.get("/models")
async def list_models(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    profile = ProfileView(services.overrides, await services.store.get_profile(user.id))
    data = [
        _model(
            item.provider,
            item.model,
            item.entry.context,
            item.entry.image_input,
            item.entry.kind == "chat",
        )
        for item in await usable_models(services, profile)
    ]
    data += [
        _model("custom", r.model_id, r.context_length)
        for r in await services.store.list_custom_models(user.id)
    ]
    return {"object": "list", "data": data}


@router.get("/models/{name:path}")
async def read_model(name: str, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    provider, model = model_named(services.providers, services.catalogue, name)
    if provider.uses_custom_models:
        raise NotFound(
            f"The model '{name[:200]}' does not exist: custom models are listed by /v1/models."
        )
    entry = services.catalogue.entry(provider.name, model)
    if entry is None:
        return _model(provider.name, model)
    return _model(provider.name, model, entry.context, entry.image_input, entry.kind == "chat")
