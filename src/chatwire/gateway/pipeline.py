"""The one pipeline every chat goes through, whatever its dialect.

    heads -> auth -> admission -> body -> dialect decode -> model/provider resolution
    -> the policies' models -> credentials -> family builds the upstream call -> upstream
    client (retries, idle timeout, disconnect watch, drain) -> family reads the stream
    -> dialect encodes -> send

It is the hot path, so it is a bare ASGI endpoint that writes straight to ``send``: no
per-request Request/Response objects, no per-chunk allocations beyond the bytes themselves
(see ../shared/bench for what the framework layers cost). Every failure, wherever it
happens, is mapped once (``upstream.failure``) and rendered by the dialect: as an error
response before the reply started, after it as the dialect says (cut, or an error event).
The steps written as functions (``caller``, ``custom_named``, ``exchange``, ``relay``,
``stopped``, ``failed``, ``expired``) are in ``gateway.steps``, shared with the embeddings
pipeline (``gateway.embeddings``) and routed chats (``routing.chat``).

A request in a family's own format (a ``NativeDialect``'s, Anthropic's Messages API) takes
the same steps, but when its provider's family speaks that format (``Forwarding``) its body
goes as sent (``family.forward``) and the reply's bytes come back unchanged
(``family.relay_reader``); for any other provider the dialect translates it into the
canonical call first, and a request it can answer itself (a token count's estimate) asks no
upstream at all.

A request whose model names a routes file's group (``routing``) takes the same steps from
the credentials on, once per deployment tried (``routing.chat.route``); a request that names
none pays one attribute test for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.datastructures import State

from chatwire.api.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    read_heads,
)
from chatwire.dialects.base import Dialect, NativeDialect, Output, Request
from chatwire.errors import (
    MethodNotAllowed,
    ProviderNotFound,
    RequestInvalid,
)
from chatwire.families.base import Forwarding
from chatwire.gateway.deadline import BODY, Deadline
from chatwire.gateway.resolve import ProfileView, model_named, target_for
from chatwire.gateway.steps import (
    admit,
    build_call,
    caller,
    custom_named,
    ended,
    exchange,
    expired,
    failed,
    relay,
    stopped,
)
from chatwire.gateway.upstream import (
    DisconnectWatch,
    Exchange,
    Target,
    UpstreamCall,
)
from chatwire.gateway.via import check_hops
from chatwire.providers.declaration import Provider
from chatwire.routing import chat as routing
from chatwire.routing.groups import group_named
from chatwire.services import Services
from chatwire.store.records import CustomModel, UserRecord
from chatwire.team.access import allow_model
from chatwire.team.counters import Hold
from chatwire.timing import Timing

log = logging.getLogger("chatwire.chat")


class ChatPipeline:
    """ASGI app for one dialect's route; ``state`` is the application's state, where the
    lifespan puts the services."""

    def __init__(self, state: State, dialect: Dialect) -> None:
        self._state = state
        self.dialect = dialect
        # The dialect again when its bodies are a family's own format, else None.
        self._native = dialect if isinstance(dialect, NativeDialect) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = self._state.services
        dialect = self.dialect
        native = self._native
        heads = read_heads(scope)
        rid = heads.request_id
        timing = Timing()
        ex: Exchange | None = None
        out: Output | None = None
        watch: DisconnectWatch | None = None
        deadline: Deadline | None = None
        body_read = False
        # For the chat's ledger row (``team.accounting``), whatever becomes of it.
        user: UserRecord | None = None
        provider: Provider | None = None
        request: Request | None = None
        reader: Any = None
        fault: BaseException | None = None
        size = 0
        hold: Hold | None = None
        deployment: str | None = None
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"Use POST for {dialect.route}.")
            # Before any work: a request that loops back through chatwire costs nothing more.
            hops = 0 if heads.via is None else check_hops(heads.via)
            user = await caller(services, scope, heads, native)
            with services.admission.admit(user.id) as place:
                settings = services.settings
                # The chat's one timer, for its body, its first byte and its whole time.
                deadline = Deadline(asyncio.get_running_loop().time() + settings.body_timeout, BODY)
                body = await read_body(
                    receive, settings.max_body_bytes, heads.content_length, place.charge
                )
                body_read = True
                size = len(body)
                place.charge_parsing(body)
                request = (
                    dialect.decode(scope["path"], body)
                    if native is None
                    else native.decode_native(scope, body)
                )
                size = len(body)
                del body  # the call holds what it needs
                # A native body's reply budget, read before the body goes as sent.
                asked = None if request.native is None else request.native.body.get("max_tokens")
                if request.state is not None:
                    # The dialect's step that needs the caller (a stored conversation).
                    await request.state.prepare(services, user.id)
                call = request.call
                group = None if services.routes is None else group_named(services.routes, request)
                if group is not None:
                    # A group's name: its deployments tried in turn (``routing.chat``).
                    routed = routing.Routed()
                    try:
                        itself = await routing.route(
                            routed,
                            services,
                            dialect,
                            group,
                            request,
                            user,
                            place,
                            send,
                            receive,
                            rid,
                            timing,
                            deadline,
                            hops,
                            asked,
                            self._translate,
                        )
                    finally:
                        provider, ex, out, reader = (
                            routed.provider,
                            routed.ex,
                            routed.out,
                            routed.reader,
                        )
                        hold, watch, deployment = routed.hold, routed.watch, routed.deployment
                        size = routed.size or size
                        if routed.model is not None:
                            call.model = routed.model
                    if itself:
                        user = None
                    return
                provider, call.model = self._provider(services, request)
                if request.provider is None:
                    # Named by the model: answers name it in full, as /v1/models lists it.
                    request.name = f"{provider.name}/{call.model}"
                # The policies' models, before anything is asked of an upstream.
                allow_model(user, provider.name, call.model)
                profile = ProfileView(services.overrides, await services.profile(user.id))
                forwarded = request.native is not None and self._forwards(provider, request)
                if forwarded:
                    # The family speaks the dialect's own format: the body goes as sent.
                    target, upstream, reader = self._forward(provider, profile, request)
                else:
                    drop = services.settings.drop_params
                    if request.native is not None and self._translate(request, drop):
                        # Answered by the dialect itself (a token count's estimate): no chat.
                        out = dialect.output(send, rid, timing, request, None, [])
                        await out.end()
                        user = None
                        return
                    custom = (
                        await self._custom(services, user.id, request)
                        if provider.uses_custom_models
                        else None
                    )
                    entry = services.catalogue.entry(provider.name, call.model)
                    if entry is not None and entry.kind != "chat":
                        raise RequestInvalid(
                            f"'{request.name[:200]}' is an embedding model: it answers "
                            "POST /v1/embeddings, not chats."
                        )
                    target = target_for(provider, profile, call, custom)
                    upstream = build_call(provider, target, call, entry, drop)
                call.drop_messages()
                place.hold_only(len(upstream.body))
                # What goes upstream is what the provider counts (a stored conversation too).
                size = len(upstream.body)
                # The caller's limits, before any upstream is called; settled however it ends.
                hold = await admit(services, user, provider, call.model, size, call, asked)
                family = provider.family
                ex = exchange(services, provider, target, upstream, timing, hops)
                if reader is None:
                    reader = (
                        family.text_reader(provider)
                        if dialect.reads_text
                        else family.reader(provider, call)
                    )
                headers = family.response_headers(provider, call)
                out = dialect.output(send, rid, timing, request, reader, headers)
                # A client that goes away cancels the upstream request at once, in any phase.
                watch = DisconnectWatch(receive)
                try:
                    await relay(ex, reader, out, watch, services.settings, deadline)
                finally:
                    watch.close()
                    deadline.close()
        except asyncio.CancelledError as exc:
            late = expired(deadline, watch, ex, services.settings)
            fault = late or exc
            if late is not None:
                await failed(dialect, send, late, ex, out, body_read, rid, timing)
            elif await stopped(dialect, send, watch, out, rid, timing):
                raise
        except ClientGone as exc:
            fault = exc
            log.debug("request %s: client went away before its body arrived", rid.decode())
        except Exception as exc:
            fault = exc
            if deadline is not None:
                deadline.close()
            await failed(dialect, send, exc, ex, out, body_read, rid, timing)
        finally:
            if user is not None:
                model = None if request is None else request.call.model
                await ended(
                    services,
                    user,
                    hold,
                    rid,
                    dialect.route,
                    timing,
                    provider,
                    model,
                    reader,
                    out,
                    fault,
                    watch,
                    size,
                    deployment,
                )
            # The fault's traceback holds this frame, which holds the fault: a cycle keeping
            # the chat's buffers until the next full collection, unless broken here.
            fault = None

    def _forwards(self, provider: Provider, request: Request) -> bool:
        native, family = request.native, provider.family
        return (
            native is not None and isinstance(family, Forwarding) and family.name == native.family
        )

    def _forward(
        self, provider: Provider, profile: ProfileView, request: Request
    ) -> tuple[Target, UpstreamCall, Any]:
        """A native request's upstream call as sent, and the reader relaying its reply."""
        native, family = request.native, provider.family
        assert native is not None
        assert isinstance(family, Forwarding)
        target = target_for(provider, profile, request.call, None)
        upstream = family.forward(provider, target, native)
        reader = family.relay_reader(provider, native)
        native.body, native.raw = {}, b""  # the chat keeps only its upstream request
        return target, upstream, reader

    def _translate(self, request: Request, drop: bool) -> bool:
        """A native request in the canonical call for a family that does not speak its
        format; True when the dialect answers it itself."""
        assert self._native is not None
        assert request.native is not None
        if self._native.translate(request, drop):
            return True  # its answer is made from the body
        request.native.body, request.native.raw = {}, b""  # the call holds what it needs
        return False

    def _provider(self, services: Services, request: Request) -> tuple[Provider, str]:
        name = request.provider
        if name is None:
            return model_named(
                services.providers, services.catalogue, request.name, services.aliases
            )
        provider = services.providers.get(name)
        if provider is None:
            known = ", ".join(sorted(services.providers))
            raise ProviderNotFound(f"Unknown provider '{name[:50]}'. Known providers: {known}.")
        return provider, request.name

    async def _custom(
        self, services: Services, user_id: int, request: Request
    ) -> CustomModel | None:
        if request.provider is not None:
            # chatbot-ui's route names the record by its id.
            if not request.custom_id:
                return None
            return await services.custom_model(user_id, request.custom_id)
        return await custom_named(services, user_id, request.call.model)
