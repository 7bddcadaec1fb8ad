"""GET/PATCH /api/profile: the caller's provider keys and settings, keys always masked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, StringConstraints

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.core.security import mask_secret
from chatwire.errors import RequestInvalid
from chatwire.store.records import MAX_FIELD_LENGTH, CredentialField, Profile

router = APIRouter(prefix="/api", tags=["profile"])

Text = Annotated[str, StringConstraints(max_length=MAX_FIELD_LENGTH)] | None


class ProfileFields(BaseModel):
    """chatbot-ui's profile key columns (``providers.fields.credential_fields``)."""

    model_config = ConfigDict(extra="forbid")

    openai_api_key: Text = None
    openai_organization_id: Text = None
    anthropic_api_key: Text = None
    google_gemini_api_key: Text = None
    mistral_api_key: Text = None
    groq_api_key: Text = None
    perplexity_api_key: Text = None
    openrouter_api_key: Text = None
    azure_openai_api_key: Text = None
    azure_openai_endpoint: Text = None
    azure_openai_35_turbo_id: Text = None
    azure_openai_45_turbo_id: Text = None
    azure_openai_45_vision_id: Text = None
    azure_openai_embeddings_id: Text = None


class ProfileUpdate(ProfileFields):
    """Set a field with a string; clear it with null or an empty string; omit it to keep it."""

    use_azure_openai: bool | None = None


class ProfilePublic(ProfileFields):
    """The profile as read back: every ``*_api_key`` is masked, never whole."""

    username: str
    use_azure_openai: bool = False


def _public(
    username: str, profile: Profile, fields: Mapping[str, CredentialField]
) -> ProfilePublic:
    values = {
        name: mask_secret(profile.get(name)) if field.secret else profile.get(name)
        for name, field in fields.items()
    }
    return ProfilePublic(username=username, use_azure_openai=profile.use_azure_openai, **values)


@router.get("/profile")
async def read_profile(user: CurrentUser, services: ServicesDep) -> ProfilePublic:
    store = services.store
    return _public(user.name, await store.get_profile(user.id), store.fields)


@router.patch("/profile")
async def update_profile(
    user: CurrentUser, services: ServicesDep, update: ProfileUpdate
) -> ProfilePublic:
    changes: dict[str, str | bool | None] = {
        name: getattr(update, name) for name in update.model_fields_set
    }
    if "use_azure_openai" in changes and changes["use_azure_openai"] is None:
        raise RequestInvalid("use_azure_openai must be true or false.")
    try:
        profile = await services.store.update_profile(user.id, changes)
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from exc
    services.profile_changed(user.id)
    return _public(user.name, profile, services.store.fields)
