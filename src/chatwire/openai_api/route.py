"""POST /v1/chat/completions: the OpenAI-compatible API, for any standard client.

Same bearer tokens, keys and catalogue as the chatbot-ui routes. Models are named
``provider/model``; a bare id resolves through the catalogue when one provider has it.
This route speaks to providers of the OpenAI-compatible wire family.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from starlette.datastructures import State

from chatwire.api.asgi import ClientGone, Receive, Scope, Send, read_body, read_heads
from chatwire.api.schemas import ChatRequest, ChatSettings
from chatwire.availability import resolve_model_name
from chatwire.errors import ChatwireError, InternalError, MethodNotAllowed, RequestInvalid
from chatwire.openai_api import params
from chatwire.openai_api.relay import Timing, relay_json, relay_sse, send_openai_error
from chatwire.providers.base import UpstreamCall
from chatwire.providers.openai_compat import OpenAICompatible
from chatwire.providers.resolve import ProfileView
from chatwire.services import Services
from chatwire.streaming import DisconnectWatch

log = logging.getLogger("chatwire.openai")
PATH = "/v1/chat/completions"
_encode = msgspec.json.encode


class ChatCompletionsRoute:
    def __init__(self, state: State) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = self._state.services
        heads = read_heads(scope)
        timing = Timing()
        try:
            await self._handle(services, scope, receive, send, heads.request_id, timing)
        except ChatwireError as error:
            await send_openai_error(send, error, heads.request_id, timing)
        except ClientGone:
            log.debug(
                "request %s: client went away before its body arrived", heads.request_id.decode()
            )
        except Exception:
            log.exception("request %s: failed", heads.request_id.decode())
            internal = InternalError(
                f"chatwire failed to handle this request (request id {heads.request_id.decode()})."
            )
            await send_openai_error(send, internal, heads.request_id, timing)

    async def _handle(
        self,
        services: Services,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: bytes,
        timing: Timing,
    ) -> None:
        if scope["method"] != "POST":
            raise MethodNotAllowed("Use POST for /v1/chat/completions.")
        heads = read_heads(scope)
        auth = heads.authorization
        user = await services.auth.user_for_authorization(auth.decode("latin-1") if auth else None)
        body = await read_body(receive, services.settings.max_body_bytes, heads.content_length)
        request, fields = params.decode(body)
        provider, model = resolve_model_name(services, request.model)
        if not isinstance(provider.adapter, OpenAICompatible) or provider.uses_custom_models:
            raise RequestInvalid(
                f"{provider.label} is served on /api/chat/{provider.name}; "
                "on /v1 it is not available yet."
            )
        profile = ProfileView(services.overrides, await services.profile(user.id))
        target = provider.resolve(
            provider,
            profile,
            ChatRequest(chatSettings=ChatSettings(model=model), messages=[]),
            None,
        )
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": request.messages,
            "stream": request.stream,
            **params.translate(
                provider.name, provider.label, fields, services.settings.drop_params
            ),
        }
        include_usage = bool(request.stream_options and request.stream_options.get("include_usage"))
        if request.stream and params.RULES.get(provider.name, params.OPENAI).ask_for_usage:
            payload["stream_options"] = {"include_usage": True}
        call = UpstreamCall(
            url=f"{target.base_url}/chat/completions{target.query}",
            headers={
                **provider.auth_headers(target.key),
                **target.headers,
                "Content-Type": "application/json",
            },
            body=_encode(payload),
        )
        name = f"{provider.name}/{model}"
        if not request.stream:
            await relay_json(
                services.http, provider, call, services.timeouts, send, rid, timing, name
            )
            return
        watch = DisconnectWatch(receive)
        try:
            await relay_sse(
                services.http,
                provider,
                call,
                services.timeouts,
                send,
                rid,
                timing,
                name,
                include_usage,
            )
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            log.info("request %s: client went away, upstream request cancelled", rid.decode())
        finally:
            watch.close()
