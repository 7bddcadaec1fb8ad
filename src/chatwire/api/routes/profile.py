"""GET/PATCH /api/profile: the caller's provider keys and settings, keys always masked.

The bodies' fields are chatbot-ui's profile names, built from the credential fields the app
is given (``build_router``), so the OpenAPI description lists exactly the fields stored.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, StringConstraints, create_model

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.core.security import mask_secret
from chatwire.errors import RequestInvalid
from chatwire.store.records import MAX_FIELD_LENGTH, CredentialField, Profile

Text = Annotated[str, StringConstraints(max_length=MAX_FIELD_LENGTH)] | None
# The names the bodies give to what is not a credential field.
OWN_NAMES = frozenset({"username", "use_azure_openai"})


@functools.cache
def _models(names: tuple[str, ...]) -> tuple[type[BaseModel], type[BaseModel]]:
    """``ProfileUpdate`` and ``ProfilePublic`` for these credential fields (made once per
    set of names: pydantic builds a model's validators in some milliseconds)."""
    text: dict[str, Any] = {name: (Text, None) for name in names}
    update_model: type[BaseModel] = create_model(
        "ProfileUpdate",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Set a field with a string; clear it with null or an empty string; "
        "omit it to keep it.",
        **text,
        use_azure_openai=(bool | None, None),
    )
    public_model: type[BaseModel] = create_model(
        "ProfilePublic",
        __config__=ConfigDict(extra="forbid"),
        __doc__="The profile as read back: every ``*_api_key`` is masked, never whole.",
        **text,
        username=(str, ...),
        use_azure_openai=(bool, False),
    )
    return update_model, public_model


def build_router(fields: Mapping[str, CredentialField]) -> APIRouter:
    """The routes, with ``ProfileUpdate`` and ``ProfilePublic`` made from ``fields``."""
    if clash := OWN_NAMES & set(fields):
        raise ValueError(f"credential fields named like profile settings: {sorted(clash)}")
    names = tuple(fields)
    masked = frozenset(name for name, field in fields.items() if field.secret)
    update_model, public_model = _models(names)

    def public(username: str, profile: Profile) -> BaseModel:
        values = {
            name: mask_secret(profile.get(name)) if name in masked else profile.get(name)
            for name in names
        }
        return public_model(username=username, use_azure_openai=profile.use_azure_openai, **values)

    router = APIRouter(prefix="/api", tags=["profile"])

    @router.get("/profile", response_model=public_model)
    async def read_profile(user: CurrentUser, services: ServicesDep) -> BaseModel:
        return public(user.name, await services.store.get_profile(user.id))

    async def update_profile(
        user: CurrentUser, services: ServicesDep, update: BaseModel
    ) -> BaseModel:
        changes: dict[str, str | bool | None] = {
            name: getattr(update, name) for name in update.model_fields_set
        }
        if "use_azure_openai" in changes and changes["use_azure_openai"] is None:
            raise RequestInvalid("use_azure_openai must be true or false.")
        try:
            profile = await services.store.update_profile(user.id, changes)
        except ValueError as exc:
            raise RequestInvalid(str(exc)) from exc
        services.changed("profile", user.id)
        return public(user.name, profile)

    # The body's model exists only now; FastAPI reads it from the parameter's annotation.
    update_profile.__annotations__["update"] = update_model
    router.add_api_route("/profile", update_profile, methods=["PATCH"], response_model=public_model)
    return router
