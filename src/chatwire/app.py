"""The application factory: routes, error handlers, and services tied to the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from chatwire import __version__
from chatwire.api import openapi
from chatwire.api.asgi import Receive, Scope, Send
from chatwire.api.auth import guard_operator_routes
from chatwire.api.bodies import BodyGuard, profile_body_limit
from chatwire.api.heads import ResponseHeads
from chatwire.api.openai_errors import openai_error
from chatwire.api.routes import (
    admin,
    chats,
    custom_models,
    keys,
    metrics,
    models,
    openai_models,
    pages,
    profile,
    responses,
    session,
    tokens,
    usage,
)
from chatwire.core.config import Settings
from chatwire.dialects.anthropic_messages import COUNT_PATH as COUNT_TOKENS
from chatwire.dialects.anthropic_messages import PATH as MESSAGES
from chatwire.dialects.anthropic_messages import AnthropicMessages, anthropic_error
from chatwire.dialects.chatbot_ui import PREFIX, ChatbotUI
from chatwire.dialects.openai_chat import PATH as COMPLETIONS
from chatwire.dialects.openai_chat import OpenAIChat
from chatwire.dialects.openai_embeddings import PATH as EMBEDDINGS
from chatwire.dialects.openai_responses import PATH as RESPONSES
from chatwire.dialects.openai_responses import OpenAIResponses
from chatwire.errors import ChatwireError, RequestInvalid
from chatwire.gateway.embeddings import EmbeddingsPipeline
from chatwire.gateway.pipeline import ChatPipeline
from chatwire.providers.registry import build_providers, credential_fields
from chatwire.services import Services
from chatwire.store.health import RETRY_AFTER, readiness
from chatwire.store.records import CredentialField


class Chatwire:
    """The ASGI application.

    The chat routes go straight to the one pipeline, each with its dialect, and
    /v1/embeddings to its pipeline of the same steps; everything else goes through FastAPI.
    Measured on the 2-core bench machine (32 connections, 20-delta replies), the framework's
    middleware layers and router wrap every ``send`` and cost the relay about a fifth of its
    throughput, so the hot path skips them.
    """

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.chat = ChatPipeline(api.state, ChatbotUI())
        self.completions = ChatPipeline(api.state, OpenAIChat())
        self.embeddings = EmbeddingsPipeline(api.state)
        self.messages = ChatPipeline(api.state, AnthropicMessages())
        self.responses = ChatPipeline(api.state, OpenAIResponses())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith(PREFIX):
                await self.chat(scope, receive, send)
                return
            if path == COMPLETIONS:
                await self.completions(scope, receive, send)
                return
            if path == EMBEDDINGS:
                await self.embeddings(scope, receive, send)
                return
            if path in (MESSAGES, COUNT_TOKENS):
                await self.messages(scope, receive, send)
                return
            if path == RESPONSES:
                await self.responses(scope, receive, send)
                return
        await self.api(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    fields: Mapping[str, CredentialField] | None = None,
    *,
    after_startup: Callable[[], None] | None = None,
) -> ASGIApp:
    """The application. ``fields``: the credential fields profiles have (by default
    ``credential_fields()``); ``after_startup`` runs once its services are built (the server
    freezes the collector there)."""
    settings = settings if settings is not None else Settings()
    app: ASGIApp = Chatwire(create_api(settings, fields, after_startup=after_startup))
    if settings.cors_origin_list:
        # Around everything, the chat routes included: a browser UI on another origin calls them.
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                "X-API-Key",
                "anthropic-version",
                "anthropic-beta",
            ],
            expose_headers=["X-Request-ID", "Server-Timing", "Retry-After"],
            max_age=600,
        )
    return app


def create_api(
    settings: Settings | None = None,
    fields: Mapping[str, CredentialField] | None = None,
    *,
    after_startup: Callable[[], None] | None = None,
) -> FastAPI:
    settings = settings if settings is not None else Settings()
    # One mapping for the store and the profile routes' models, fixed for the app's life.
    known = dict(fields) if fields is not None else credential_fields()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings, known)
        app.state.services = services
        if after_startup is not None:
            after_startup()
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(title="chatwire", version=__version__, lifespan=lifespan)
    app.include_router(profile.build_router(known))
    app.include_router(keys.router)
    app.include_router(models.router)
    app.include_router(custom_models.router)
    app.include_router(openai_models.router)
    app.include_router(responses.router)
    app.include_router(metrics.router)
    app.include_router(session.router)
    app.include_router(tokens.router)
    app.include_router(usage.router)
    app.include_router(chats.router)
    app.include_router(admin.router)
    pages.install(app)

    @app.get("/healthz", tags=["health"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers, whatever its database does."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready"}})
    async def ready(request: Request) -> JSONResponse:
        """Readiness: the database answers and its schema is at the migrations' head."""
        services: Services = request.app.state.services
        problem = await readiness(services.engine)
        if problem is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"status": "unavailable", "message": f"chatwire is not ready: {problem}."},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER)},
        )

    openapi.install(app, build_providers(settings))
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    app.add_middleware(
        BodyGuard,
        state=app.state,
        # Signing in brings a token in its body, to trade for a session.
        open_paths=frozenset(["/healthz", "/metrics", "/api/session", *(p for p in docs if p)]),
        profile_limit=profile_body_limit(len(known)),
        timeout=settings.body_timeout,
        # A kept chat is at most what its chat requests carried.
        chats_limit=settings.max_body_bytes,
    )
    # Added after the guard, so around it: its refusals carry the same heads.
    app.add_middleware(ResponseHeads)
    if settings.metrics_token:
        guard_operator_routes(app, settings.metrics_token.get_secret_value())
    app.add_exception_handler(ChatwireError, _chatwire_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    return app


def _error_response(request: Request, error: ChatwireError) -> JSONResponse:
    """``{"message"}`` for chatwire's own API, OpenAI's error shape under /v1 (Anthropic's
    for a request of an Anthropic client: it sends ``anthropic-version``)."""
    headers = {k.decode(): v.decode() for k, v in error.headers()}
    if request.url.path.startswith("/v1/") and "anthropic-version" in request.headers:
        status, body = anthropic_error(error)
        return JSONResponse(body, status_code=status, headers=headers)
    if request.url.path.startswith("/v1/"):
        return JSONResponse(openai_error(error), status_code=error.status, headers=headers)
    return JSONResponse({"message": error.message}, status_code=error.status, headers=headers)


async def _chatwire_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatwireError)
    return _error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        problems.append(
            f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", "")
        )
    return _error_response(request, RequestInvalid("Invalid request: " + "; ".join(problems)))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:  # no route matched: the routes' own 404s are ChatwireErrors
        unknown = openapi.unknown_url(request.app, request.method, request.url.path)
        return _error_response(request, unknown)
    response = _error_response(request, ChatwireError(str(exc.detail), status=exc.status_code))
    response.headers.update(exc.headers or {})
    return response
