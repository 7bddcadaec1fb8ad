"""GET /api/keys: which provider settings come from the server's environment."""

from __future__ import annotations

from fastapi import APIRouter

from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.providers.registry import ENV_KEY_MAP

router = APIRouter(prefix="/api", tags=["keys"])


@router.get("/keys")
async def env_keys(_user: CurrentUser, services: ServicesDep) -> dict[str, dict[str, bool]]:
    settings = services.settings
    return {
        "isUsingEnvKeyMap": {
            name: settings.env_value(field) is not None for name, field in ENV_KEY_MAP.items()
        }
    }
