"""GET /v1/models: the caller's usable models, named ``provider/model``, in OpenAI's shape
(chat models and embedding models alike; these say they do not chat), or in Anthropic's for a
request that carries ``anthropic-version`` (Claude Code finds its models so); such a client's
token may come in ``x-api-key``, as its API key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from chatwire.api.bodies import USER_KEY
from chatwire.api.deps import ServicesDep
from chatwire.availability import usable_models
from chatwire.errors import ChatwireError, NotFound
from chatwire.gateway.resolve import ProfileView, model_named
from chatwire.routing.groups import allow_group
from chatwire.services import Services
from chatwire.store.records import UserRecord
from chatwire.team.access import allow_model, may_use

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible API"])


async def _caller(request: Request, services: ServicesDep) -> UserRecord:
    known: UserRecord | None = request.scope.get(USER_KEY)
    if known is not None:
        return known
    authorization = request.headers.get("authorization")
    key = request.headers.get("x-api-key", "").strip()
    if authorization is None and key:
        authorization = f"Bearer {key}"
    client = request.client.host if request.client is not None else ""
    return await services.auth.user_for_authorization(authorization, client)


Caller = Annotated[UserRecord, Depends(_caller)]


def _anthropic(request: Request) -> bool:
    return "anthropic-version" in request.headers


def _card(name: str, label: str | None) -> dict[str, Any]:
    """An entry as Anthropic lists models."""
    return {
        "type": "model",
        "id": name,
        "display_name": label or name,
        "created_at": "1970-01-01T00:00:00Z",
    }


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


def _alias_allowed(services: Services, user: UserRecord, target: str) -> bool:
    try:
        provider, model = model_named(services.providers, services.catalogue, target)
    except ChatwireError:
        return False
    return may_use(user, f"{provider.name}/{model}")


@router.get("/models")
async def list_models(request: Request, user: Caller, services: ServicesDep) -> dict[str, Any]:
    """The models the caller may use: those its policies' ``models`` allow among those it
    has the keys for."""
    profile = ProfileView(services.overrides, await services.store.get_profile(user.id))
    usable = [
        item
        for item in await usable_models(services, profile)
        if may_use(user, f"{item.provider}/{item.model}")
    ]
    custom = [
        record
        for record in await services.store.list_custom_models(user.id)
        if may_use(user, f"custom/{record.model_id}")
    ]
    groups = [g for g in (services.routes or {}).values() if may_use(user, g.name)]
    if _anthropic(request):
        cards = [_card(f"{item.provider}/{item.model}", item.entry.label) for item in usable]
        cards += [_card(group.name, group.label) for group in groups]
        cards += [_card(f"custom/{r.model_id}", r.name) for r in custom]
        cards += [
            _card(alias, None)
            for alias, target in services.aliases.items()
            if _alias_allowed(services, user, target)
        ]
        return {
            "data": cards,
            "has_more": False,
            "first_id": cards[0]["id"] if cards else None,
            "last_id": cards[-1]["id"] if cards else None,
        }
    data = [
        _model(
            item.provider,
            item.model,
            item.entry.context,
            item.entry.image_input,
            item.entry.kind == "chat",
        )
        for item in usable
    ]
    data += [_model("custom", r.model_id, r.context_length) for r in custom]
    data += [_group(group.name) for group in groups]
    return {"object": "list", "data": data}


def _group(name: str) -> dict[str, Any]:
    """A routes file's group, as OpenAI lists a model (owned by chatwire)."""
    entry = _model("chatwire", name)
    entry["id"] = name
    return entry


@router.get("/models/{name:path}")
async def read_model(
    name: str, request: Request, user: Caller, services: ServicesDep
) -> dict[str, Any]:
    group = None if services.routes is None else services.routes.get(name)
    if group is not None:
        allow_group(user, name)
        return _card(name, group.label) if _anthropic(request) else _group(name)
    provider, model = model_named(services.providers, services.catalogue, name, services.aliases)
    allow_model(user, provider.name, model)
    if provider.uses_custom_models:
        raise NotFound(
            f"The model '{name[:200]}' does not exist: custom models are listed by /v1/models."
        )
    entry = services.catalogue.entry(provider.name, model)
    if _anthropic(request):
        return _card(name, entry.label if entry is not None else None)
    if entry is None:
        return _model(provider.name, model)
    return _model(provider.name, model, entry.context, entry.image_input, entry.kind == "chat")
