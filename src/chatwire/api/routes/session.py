"""/api/session: a browser signs in to chatwire's own pages with a bearer token, and out.

Signing in trades a token for a session cookie (HttpOnly, SameSite=Strict, Secure over
TLS) and the session's CSRF token, which the pages send in ``X-CSRF-Token`` with every
request that changes something (``api.auth``). The token itself is not kept by the browser.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from chatwire.api.auth import CSRF_HEADER, SESSION_COOKIE, csrf_token, session_cookie
from chatwire.api.deps import CurrentUser, ServicesDep
from chatwire.errors import AuthenticationRequired, RequestInvalid

router = APIRouter(prefix="/api", tags=["web session"])


Secret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class SignIn(BaseModel):
    """One of: a bearer token, pasted; a sign-in link's code (``chatwire serve`` prints a
    link on first start, ``chatwire users link NAME`` makes one), which works once."""

    model_config = ConfigDict(extra="forbid")

    token: Secret | None = None
    link: Secret | None = None


class SessionPublic(BaseModel):
    """Who is signed in, and the CSRF token to send in ``X-CSRF-Token`` (none for a
    request made with a bearer token, which needs none). ``role``: the pages offer the admin
    page to admins only (the admin API refuses everyone else with a 403 anyway)."""

    user: str
    role: str
    csrf_token: str | None
    csrf_header: str = CSRF_HEADER


@router.post("/session", status_code=201)
async def sign_in(
    body: SignIn, request: Request, response: Response, services: ServicesDep
) -> SessionPublic:
    """Only with ``Content-Type: application/json`` (else a 400), which a page on another
    site cannot send without the browser asking this origin first: none can sign a visitor
    in to an account of its choosing."""
    if request.headers.get("content-type", "").partition(";")[0].strip() != "application/json":
        raise RequestInvalid("Sign in with a JSON body (Content-Type: application/json).")
    client = request.client.host if request.client is not None else ""
    if (body.token is None) == (body.link is None):
        raise RequestInvalid("Sign in with either a token or a sign-in link's code.")
    if body.token is not None:
        user = await services.auth.user_for_authorization(f"Bearer {body.token}", client)
    else:
        found = await services.web.redeem_link(body.link or "")
        if found is None:
            raise AuthenticationRequired(
                "This sign-in link has been used or has expired; make another with "
                "'chatwire users link NAME', or sign in with a token."
            )
        user = found
    days = services.settings.session_days
    session = await services.web.create_session(user.id, timedelta(days=days))
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(days * 86400),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return SessionPublic(user=user.name, role=user.role, csrf_token=csrf_token(session))


@router.get("/session")
async def read_session(user: CurrentUser, request: Request) -> SessionPublic:
    session = (
        None if "authorization" in request.headers else session_cookie(request.scope["headers"])
    )
    return SessionPublic(
        user=user.name, role=user.role, csrf_token=csrf_token(session) if session else None
    )


@router.delete("/session", status_code=204)
async def sign_out(user: CurrentUser, request: Request, services: ServicesDep) -> Response:
    """Ends the session server-side: its cookie no longer signs anyone in, anywhere."""
    session = (
        None if "authorization" in request.headers else session_cookie(request.scope["headers"])
    )
    if session is not None:
        await services.web.end_session(session)
        services.auth.session_ended(session)
        # The other processes forget their cached sessions too (through Redis, when set).
        services.changed("user", user.id)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
