"""FastAPI dependencies for the routes off the hot path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chatwire.services import Services
from chatwire.store.records import UserRecord


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_user(request: Request, services: ServicesDep) -> UserRecord:
    return await services.auth.user_for_authorization(request.headers.get("authorization"))


CurrentUser = Annotated[UserRecord, Depends(current_user)]
