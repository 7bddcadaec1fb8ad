"""The embeddings pipeline: ``POST /v1/embeddings``, through the chat pipeline's own steps.

    heads -> auth -> admission -> body -> decode -> model/provider resolution -> the
    policies' models -> credentials -> the provider's embeddings wire builds the call ->
    upstream client (retries, timeouts, disconnect watch) -> the wire reads the answer ->
    OpenAI's answer

Each step is the chats' (``gateway.steps``): the same token check, the same admission
(an embeddings request counts as a chat open), body limit and budget, the same resolution of
``provider/model`` and bare ids, keys (the operator's, else the caller's stored one), custom
models and Azure deployments, the same upstream client and failure mapping, the SSRF guard
for URLs users set. What differs is what is built and read: the provider's ``Embeddings``
(``Provider.embeddings``, in its family's module), and one answer read whole instead of a
stream. A provider without embeddings, or a chat model, is a 400 saying which ones embed.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import State

from chatwire.api.asgi import ClientGone, Receive, Scope, Send, read_body, read_heads
from chatwire.dialects.openai_embeddings import EmbeddingsOutput, OpenAIEmbeddings
from chatwire.errors import MethodNotAllowed, RequestInvalid
from chatwire.families.base import Embeddings
from chatwire.gateway.call import ChatCall
from chatwire.gateway.deadline import BODY, Deadline
from chatwire.gateway.embedding_call import EmbeddingCall, EmbeddingsReader
from chatwire.gateway.resolve import ProfileView, model_named, target_for
from chatwire.gateway.steps import (
    admit,
    caller,
    custom_named,
    ended,
    exchange,
    expired,
    failed,
    relay,
    stopped,
)
from chatwire.gateway.upstream import DisconnectWatch, Exchange
from chatwire.gateway.via import check_hops
from chatwire.providers.declaration import Provider
from chatwire.services import Services
from chatwire.store.records import UserRecord
from chatwire.team.access import allow_model
from chatwire.team.counters import Hold
from chatwire.timing import Timing

log = logging.getLogger("chatwire.embeddings")


class EmbeddingsPipeline:
    """ASGI app for ``/v1/embeddings``; ``state`` is the application's state, where the
    lifespan puts the services."""

    def __init__(self, state: State) -> None:
        self._state = state
        self.dialect = OpenAIEmbeddings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = self._state.services
        dialect = self.dialect
        heads = read_heads(scope)
        rid = heads.request_id
        timing = Timing()
        ex: Exchange | None = None
        out: EmbeddingsOutput | None = None
        watch: DisconnectWatch | None = None
        deadline: Deadline | None = None
        body_read = False
        # For the request's ledger row (``team.accounting``).
        user: UserRecord | None = None
        call: EmbeddingCall | None = None
        reader: EmbeddingsReader | None = None
        provider: Provider | None = None
        fault: BaseException | None = None
        size = 0
        hold: Hold | None = None
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"Use POST for {dialect.route}.")
            hops = 0 if heads.via is None else check_hops(heads.via)
            user = await caller(services, scope, heads)
            with services.admission.admit(user.id) as place:
                settings = services.settings
                deadline = Deadline(asyncio.get_running_loop().time() + settings.body_timeout, BODY)
                body = await read_body(
                    receive, settings.max_body_bytes, heads.content_length, place.charge
                )
                body_read = True
                size = len(body)
                place.charge_parsing(body)
                call = dialect.decode(body)
                del body
                provider, call.model = model_named(
                    services.providers, services.catalogue, call.name
                )
                call.name = f"{provider.name}/{call.model}"
                allow_model(user, provider.name, call.model)
                wire = _embeddings(services, provider, call)
                profile = ProfileView(services.overrides, await services.profile(user.id))
                custom = (
                    await custom_named(services, user.id, call.model)
                    if provider.uses_custom_models
                    else None
                )
                # The target of a call without messages: a custom model's reply budget,
                # which they set, means nothing here.
                target = target_for(provider, profile, ChatCall(call.model, []), custom)
                upstream = wire.build(provider, target, call, settings.drop_params)
                place.hold_only(len(upstream.body))
                size = len(upstream.body)
                # Limits as for a chat: its input reserved, no output.
                hold = await admit(services, user, provider, call.model, size, None)
                reader = EmbeddingsReader(wire.parse)
                ex = exchange(services, provider, target, upstream, timing, hops)
                out = dialect.output(send, rid, timing, call, reader)
                watch = DisconnectWatch(receive)
                try:
                    await relay(ex, reader, out, watch, settings, deadline)
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
                model = None if call is None else call.model
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
                )
            # The fault's traceback holds this frame, which holds the fault: a cycle keeping
            # the chat's buffers until the next full collection, unless broken here.
            fault = None


def _embeddings(services: Services, provider: Provider, call: EmbeddingCall) -> Embeddings:
    """The provider's embeddings wire; a 400 for a provider that has none, or for a model the
    catalogue knows as a chat model, naming those that embed."""
    wire = provider.embeddings
    if wire is None:
        having = ", ".join(sorted(n for n, p in services.providers.items() if p.embeddings))
        raise RequestInvalid(
            f"{provider.label} has no embeddings API. The providers with embeddings are: {having}."
        )
    entry = services.catalogue.entry(provider.name, call.model)
    if entry is not None and entry.kind != "embedding":
        models = sorted(
            f"{provider.name}/{model}"
            for model, listed in services.catalogue.models.get(provider.name, {}).items()
            if listed.kind == "embedding" and not listed.retired
        )
        which = (
            f"{provider.label}'s embedding models are: {', '.join(models)}."
            if models
            else f"{provider.label}'s embedding models are those its server lists."
        )
        raise RequestInvalid(
            f"'{call.name[:200]}' is a chat model, not an embedding model. {which}"
        )
    return wire
