"""/api/custom-models: the caller's own OpenAI-compatible models, for the custom chat route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.core.security import mask_secret
from chatwire.errors import LimitReached, NotFound, RequestInvalid
from chatwire.store.records import MAX_FIELD_LENGTH, CustomModel
from chatwire.store.repo import TooManyCustomModels

router = APIRouter(prefix="/api/custom-models", tags=["custom models"])

Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(max_length=MAX_FIELD_LENGTH)]
URL = Annotated[str, StringConstraints(min_length=8, max_length=MAX_FIELD_LENGTH)]
ContextLength = Annotated[int, Field(gt=0, le=10_000_000)]
RecordId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class CustomModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    model_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_FIELD_LENGTH)]
    base_url: URL
    api_key: Text = ""
    context_length: ContextLength = 4096
    description: Text = ""


class CustomModelUpdate(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    model_id: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_FIELD_LENGTH)] | None
    ) = None
    base_url: URL | None = None
    api_key: Text | None = None
    context_length: ContextLength | None = None
    description: Text | None = None


class CustomModelPublic(BaseModel):
    """A custom model as read back; use ``id`` as the chat request's ``customModelId``."""

    id: str
    name: str
    model_id: str
    base_url: str
    api_key: str | None
    context_length: int
    description: str


def _public(record: CustomModel) -> CustomModelPublic:
    return CustomModelPublic(
        id=str(record.id),
        name=record.name,
        model_id=record.model_id,
        base_url=record.base_url,
        api_key=mask_secret(record.api_key),
        context_length=record.context_length,
        description=record.description,
    )


def _missing(record_id: int) -> NotFound:
    return NotFound(f"You have no custom model with id {record_id} (GET /api/custom-models).")


@router.get("")
async def list_models(user: CurrentUser, services: ServicesDep) -> list[CustomModelPublic]:
    return [_public(r) for r in await services.store.list_custom_models(user.id)]


@router.post("", status_code=201)
async def create_model(
    user: CurrentUser, services: ServicesDep, body: CustomModelCreate
) -> CustomModelPublic:
    limit = services.settings.max_custom_models
    try:
        record = await services.store.create_custom_model(user.id, **body.model_dump(), limit=limit)
    except TooManyCustomModels as exc:
        raise LimitReached(
            f"You have {limit} custom models, the most allowed (CHATWIRE_MAX_CUSTOM_MODELS); "
            "delete one first (DELETE /api/custom-models/{id})."
        ) from exc
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from exc
    services.changed("custom_models", user.id)
    return _public(record)


@router.patch("/{record_id}")
async def update_model(
    record_id: RecordId, user: CurrentUser, services: ServicesDep, body: CustomModelUpdate
) -> CustomModelPublic:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    try:
        record = await services.store.update_custom_model(user.id, record_id, **changes)
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from exc
    if record is None:
        raise _missing(record_id)
    services.changed("custom_models", user.id)
    return _public(record)


@router.delete("/{record_id}", status_code=204)
async def delete_model(record_id: RecordId, user: CurrentUser, services: ServicesDep) -> Response:
    if not await services.store.delete_custom_model(user.id, record_id):
        raise _missing(record_id)
    services.changed("custom_models", user.id)
    return Response(status_code=204)
