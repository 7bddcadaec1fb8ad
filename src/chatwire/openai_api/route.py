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

from chatwire.api.admission import Place
from chatwire.api.asgi import ClientGone, Heads, Receive, Scope, Send, read_body, read_heads
from chatwire.api.schemas import ChatRequest, ChatSettings, Message
from chatwire.availability import resolve_model_name
from chatwire.errors import (
    ChatwireError,
    InternalError,
    MethodNotAllowed,
    NotFound,
)
from chatwire.openai_api import params
from chatwire.openai_api.anthropic import AnthropicTranslation
from chatwire.openai_api.chunks import ChunkReader, OpenAIChunks
from chatwire.openai_api.gemini import GeminiTranslation
from chatwire.openai_api.ollama import OllamaTranslation
from chatwire.openai_api.relay import (
    Exchange,
    relay_collected,
    relay_json,
    relay_sse,
    send_openai_error,
)
from chatwire.openai_api.translate import Translation
from chatwire.providers.anthropic import AnthropicMessages
from chatwire.providers.base import Provider, Target, UpstreamCall
from chatwire.providers.gemini import GeminiGenerateContent
from chatwire.providers.ollama import OllamaChat
from chatwire.providers.openai_compat import OpenAICompatible
from chatwire.providers.resolve import ProfileView
from chatwire.services import Services
from chatwire.store.records import CustomModel
from chatwire.streaming import DisconnectWatch
from chatwire.timing import Timing

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
            await self._handle(services, scope, receive, send, heads, timing)
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
        heads: Heads,
        timing: Timing,
    ) -> None:
        if scope["method"] != "POST":
            raise MethodNotAllowed("Use POST for /v1/chat/completions.")
        auth = heads.authorization
        user = await services.auth.user_for_authorization(auth.decode("latin-1") if auth else None)
        with services.admission.admit(user.id) as place:
            await self._complete(services, receive, send, heads, timing, user.id, place)

    async def _complete(
        self,
        services: Services,
        receive: Receive,
        send: Send,
        heads: Heads,
        timing: Timing,
        user_id: int,
        place: Place,
    ) -> None:
        rid = heads.request_id
        limit = services.settings.max_body_bytes
        body = await read_body(receive, limit, heads.content_length, place.charge)
        request, fields = params.decode(body)
        provider, model = resolve_model_name(services, request.model)
        profile = ProfileView(services.overrides, await services.profile(user_id))
        # Only a custom model's reply budget looks at the messages (to estimate the prompt).
        chat = ChatRequest(chatSettings=ChatSettings(model=model), messages=[])
        custom = None
        if provider.uses_custom_models:
            custom = await _custom_record(services, user_id, model)
            chat.messages = _messages(fields)
        target = provider.resolve(provider, profile, chat, custom)
        include_usage = bool(request.stream_options and request.stream_options.get("include_usage"))
        if isinstance(provider.adapter, OpenAICompatible):
            call = _openai_call(provider, target, request, fields, services.settings.drop_params)
            asked = params.rules_for(provider.name).ask_for_usage
            reader: ChunkReader = OpenAIChunks(keep_usage=not include_usage, usage_follows=asked)
        else:
            # Anthropic, Gemini, Ollama: always streamed upstream, read back as chunks.
            translation = TRANSLATIONS[type(provider.adapter)]
            limits = services.catalogue.limits(provider.name, model)
            call = translation.build(
                provider, target, fields, limits, services.settings.drop_params
            )
            reader = translation.reader()
        name = f"{provider.name}/{model}"
        exchange = Exchange(
            services.http, provider, call, services.timeouts, send, rid, timing, name
        )
        # Streamed or not, a client that goes away cancels the upstream request at once.
        watch = DisconnectWatch(receive)
        try:
            if request.stream:
                await relay_sse(exchange, include_usage, reader, watch.close)
            elif isinstance(reader, OpenAIChunks):
                await relay_json(exchange)
            else:
                await relay_collected(exchange, reader)
        except asyncio.CancelledError:
            if not watch.gone:
                log.warning("request %s: cancelled, the server is stopping", rid.decode())
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            log.info("request %s: client went away, upstream request cancelled", rid.decode())
        finally:
            watch.close()


def _openai_call(
    provider: Provider,
    target: Target,
    request: params.ChatCompletionRequest,
    fields: dict[str, Any],
    drop: bool,
) -> UpstreamCall:
    payload: dict[str, Any] = {
        "model": target.model,
        "messages": params.messages(provider.name, provider.label, request.messages, drop),
        "stream": request.stream,
        **params.translate(provider.name, provider.label, fields, drop),
    }
    budget_given = fields.get("max_tokens") or fields.get("max_completion_tokens")
    if target.max_tokens is not None and not budget_given:
        # A custom model's reply budget from its record, as on /api/chat/custom.
        payload["max_tokens"] = target.max_tokens
    if request.stream and params.rules_for(provider.name).ask_for_usage:
        payload["stream_options"] = {"include_usage": True}
    return UpstreamCall(
        url=f"{target.base_url}/chat/completions{target.query}",
        headers={
            **provider.auth_headers(target.key),
            **target.headers,
            "Content-Type": "application/json",
        },
        body=_encode(payload),
    )


TRANSLATIONS: dict[type, Translation] = {
    AnthropicMessages: AnthropicTranslation(),
    GeminiGenerateContent: GeminiTranslation(),
    OllamaChat: OllamaTranslation(),
}


def _messages(fields: dict[str, Any]) -> list[Message]:
    """The messages as chatwire's own structs, for a custom model's reply budget (which
    estimates the prompt from them). Messages those structs do not describe (tool turns,
    the developer role, audio parts...) count by the size of their JSON instead, so the
    estimate never drops to nothing."""
    sent = fields.get("messages") or []
    try:
        return msgspec.convert(sent, list[Message])
    except msgspec.ValidationError:
        return [Message(role="user", content=_encode(sent).decode())]


async def _custom_record(services: Services, user_id: int, model: str) -> CustomModel:
    for record in await services.store.list_custom_models(user_id):
        if model in (record.model_id, record.name):
            return record
    raise NotFound(
        f"You have no custom model '{model[:200]}' (GET /v1/models lists yours as custom/<model>)."
    )
