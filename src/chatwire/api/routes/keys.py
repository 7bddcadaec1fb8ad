"""GET /api/keys: which provider settings come from the server's environment."""

from __future__ import annotations

from fastapi import APIRouter

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.providers.registry import env_key_map

router = APIRouter(prefix="/api", tags=["keys"])


@router.get("/keys")
async def env_keys(_user: CurrentUser, services: ServicesDep) -> dict[str, dict[str, bool]]:
    return {"isUsingEnvKeyMap": env_key_map(services.settings, services.providers.values())}
