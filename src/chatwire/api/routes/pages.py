"""chatwire's own web pages: ``/`` and the files under ``/web/``, shipped in the package
(``chatwire/web``), plain ES modules with nothing to build.

Every page answer forbids anything not from chatwire itself (Content-Security-Policy): no
inline script, no other origin, no framing, so even a reply that got past the pages' own
care (they build DOM nodes from a model's text, never HTML) could run nothing.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
ASSETS = "/web"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> Response:
    page = (resources.files("chatwire") / "web" / "index.html").read_bytes()
    return Response(
        page,
        media_type="text/html; charset=utf-8",
        headers={k.decode(): v.decode() for k, v in SECURITY_HEADERS}
        | {"cache-control": "no-cache"},
    )


class _Secured:
    """The asset files with the same headers as the page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *SECURITY_HEADERS,
                    (b"cache-control", b"no-cache"),
                ]
            await send(message)

        await self.app(scope, receive, secured)


def install(app: FastAPI) -> None:
    app.include_router(router)
    files = StaticFiles(packages=[("chatwire", "web")])
    app.mount(ASSETS, _Secured(files), name="web")
