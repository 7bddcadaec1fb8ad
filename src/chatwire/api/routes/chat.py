"""POST /api/chat/{provider}: chatbot-ui's chat route, streaming plain text.

This route is the hot path, so it is a bare ASGI endpoint that writes straight to
``send``: no per-request Request/Response objects, no per-chunk allocations beyond the
bytes themselves (see ../shared/bench for what the framework layers cost).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import State

from chatwire.api.admission import Place
from chatwire.api.asgi import (
    ClientGone,
    Heads,
    Receive,
    Scope,
    Send,
    read_body,
    read_heads,
    send_error,
)
from chatwire.api.schemas import decode_chat_request
from chatwire.errors import (
    ChatwireError,
    InternalError,
    MethodNotAllowed,
    ProviderNotFound,
    StreamAborted,
)
from chatwire.providers.resolve import ProfileView
from chatwire.services import Services
from chatwire.streaming import DisconnectWatch, relay_text
from chatwire.timing import Timing

log = logging.getLogger("chatwire.chat")


PREFIX = "/api/chat/"


class ChatRoute:
    """ASGI app for ``/api/chat/{provider}``.

    ``state`` is the application's state, where the lifespan puts the services.
    """

    def __init__(self, state: State) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = self._state.services
        heads = read_heads(scope)
        rid = heads.request_id
        timing = Timing()
        try:
            await self._handle(services, scope, receive, send, heads, timing)
        except ChatwireError as error:
            await send_error(send, error, rid, timing)
        except ClientGone:
            log.debug("request %s: client went away before its body arrived", rid.decode())
        except StreamAborted:
            raise  # the reply had started: the server cuts the response
        except Exception:
            # Nothing is left unmapped: a fault of chatwire's own still answers in JSON.
            log.exception("request %s: failed", rid.decode())
            internal = InternalError(
                f"chatwire failed to handle this request (request id {rid.decode()}); "
                "the server log has the details."
            )
            await send_error(send, internal, rid, timing)

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
            raise MethodNotAllowed("Use POST for /api/chat/<provider>.")
        authorization = heads.authorization
        user = await services.auth.user_for_authorization(
            authorization.decode("latin-1") if authorization is not None else None
        )
        with services.admission.admit(user.id) as place:
            await self._chat(services, scope, receive, send, heads, timing, user.id, place)

    async def _chat(
        self,
        services: Services,
        scope: Scope,
        receive: Receive,
        send: Send,
        heads: Heads,
        timing: Timing,
        user_id: int,
        place: Place,
    ) -> None:
        name: str = scope["path"][len(PREFIX) :]
        provider = services.providers.get(name)
        if provider is None:
            known = ", ".join(sorted(services.providers))
            raise ProviderNotFound(f"Unknown provider '{name[:50]}'. Known providers: {known}.")
        limit = services.settings.max_body_bytes
        body = await read_body(receive, limit, heads.content_length, place.charge)
        request = decode_chat_request(body)
        fields = ProfileView(services.overrides, await services.profile(user_id))
        custom = None
        if provider.uses_custom_models and request.customModelId:
            custom = await services.custom_model(user_id, request.customModelId)
        target = provider.resolve(provider, fields, request, custom)
        limits = services.catalogue.limits(provider.name, request.chatSettings.model)
        call = provider.adapter.build(provider, target, request, limits)

        watch = DisconnectWatch(receive)
        try:
            await relay_text(
                services.http,
                provider,
                call,
                services.timeouts,
                send,
                heads.request_id,
                watch.close,
                timing,
            )
        except asyncio.CancelledError:
            if not watch.gone:
                rid = heads.request_id.decode()
                log.warning("request %s: cancelled, the server is stopping", rid)
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            log.info(
                "request %s: client went away, upstream request cancelled",
                heads.request_id.decode(),
            )
        finally:
            watch.close()
