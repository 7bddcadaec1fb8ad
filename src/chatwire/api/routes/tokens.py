"""/api/tokens: the caller's own bearer tokens: list, create (shown once), revoke.

Revoking takes effect within ``CHATWIRE_CACHE_TTL`` seconds (``api.auth``'s cache).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.errors import NotFound

router = APIRouter(prefix="/api/tokens", tags=["tokens"])
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class TokenPublic(BaseModel):
    """A token as listed: never its value, which only its creation shows."""

    id: int
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(BaseModel):
    token: str


@router.get("")
async def list_tokens(user: CurrentUser, services: ServicesDep) -> list[TokenPublic]:
    return [
        TokenPublic(id=t.id, created_at=t.created_at, revoked_at=t.revoked_at)
        for t in await services.store.list_tokens(user.name)
    ]


@router.post("", status_code=201)
async def create_token(user: CurrentUser, services: ServicesDep) -> TokenCreated:
    """A new token of the caller's: its value is in this answer only (chatwire keeps its
    hash)."""
    return TokenCreated(token=await services.store.create_token(user.name))


@router.delete("/{token_id}", status_code=204)
async def revoke_token(token_id: TokenId, user: CurrentUser, services: ServicesDep) -> Response:
    if not await services.store.revoke_token(token_id, user_id=user.id):
        raise NotFound(
            f"You have no token with id {token_id} that is still active (GET /api/tokens)."
        )
    await services.announce("token", token_id)
    return Response(status_code=204)
