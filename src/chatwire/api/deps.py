"""FastAPI dependencies for the routes off the hot path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chatwire.api.bodies import USER_KEY
from chatwire.services import Services
from chatwire.store.records import UserRecord


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_user(request: Request, services: ServicesDep) -> UserRecord:
    known: UserRecord | None = request.scope.get(USER_KEY)
    if known is not None:  # a request with a body: the guard in front checked its token
        return known
    client = request.client.host if request.client is not None else ""
    authorization = request.headers.get("authorization")
    if authorization is None:  # chatwire's own pages: the session cookie
        return await services.auth.user_for_browser(
            request.scope["headers"], request.method, client
        )
    return await services.auth.user_for_authorization(authorization, client)


CurrentUser = Annotated[UserRecord, Depends(current_user)]
