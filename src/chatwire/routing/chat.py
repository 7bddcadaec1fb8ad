"""A chat whose model names a group: the pipeline's steps, once per deployment tried.

The deployments are tried in the router's order (``Router.plan``), each with the call built
for its own provider's family from the chat's canonical call (a copy per deployment: a
family's build may change the parameters), so tools, images and parameters are translated
for the deployment that answers. A native body (Anthropic's Messages) is translated into the
canonical call once, for every family alike.

A deployment is skipped, with the reason logged, when it cannot take the request: no key
where its ``key`` says to look, an embedding model, images for a model the catalogue says
takes none. A failure before the first byte went to the client (a 429, 5xx, 529, a timeout,
a refused connection) puts the deployment in cooldown and the next one is asked, at once,
within ``CHATWIRE_ROUTE_ATTEMPTS`` deployments and the chat's own time; once a byte went
out, the failure is the chat's, as for any chat. Same-upstream retries are left to the
failover (each deployment is asked once). When none answers, the last failure is the
chat's answer, in the dialect's shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from chatwire.api.schemas import ImagePart
from chatwire.errors import (
    ChatwireError,
    KeyMissing,
    NotFound,
    RequestInvalid,
    UpstreamError,
    UpstreamNotAllowed,
)
from chatwire.gateway import steps
from chatwire.gateway.call import ChatCall
from chatwire.gateway.deadline import FIRST_BYTE, Deadline
from chatwire.gateway.failures import failure, first_byte_timeout
from chatwire.gateway.resolve import ProfileView, target_for
from chatwire.gateway.upstream import DisconnectWatch, Exchange, retry_after_seconds
from chatwire.routing.groups import Group, allow_group
from chatwire.store.records import Profile

if TYPE_CHECKING:
    from chatwire.api.admission import Place
    from chatwire.api.asgi import Receive, Send
    from chatwire.dialects.base import Dialect, Output, Request
    from chatwire.providers.declaration import Provider
    from chatwire.services import Services
    from chatwire.store.records import UserRecord
    from chatwire.team.counters import Hold
    from chatwire.timing import Timing

log = logging.getLogger("chatwire.routing")

HEADER = b"x-chatwire-deployment"


@dataclass(slots=True)
class Routed:
    """How far a routed chat got, for the pipeline's error handling and ledger row."""

    provider: Provider | None = None
    model: str | None = None
    deployment: str | None = None
    ex: Exchange | None = None
    out: Output | None = None
    reader: Any = None
    hold: Hold | None = None
    watch: DisconnectWatch | None = None
    size: int = 0


def fails_over(error: ChatwireError) -> bool:
    """Whether another deployment may do better: a refusal that may pass, a server's fault,
    a timeout or no connection; not the request's own fault."""
    if not isinstance(error, UpstreamError) or isinstance(error, UpstreamNotAllowed):
        return False
    return error.status in (408, 429) or error.status >= 500


def has_images(call: ChatCall) -> bool:
    """Whether a message of the call has an image part (OpenAI's, or chatbot-ui's typed)."""
    for message in call.messages:
        content = message.get("content") if isinstance(message, dict) else message.content
        if isinstance(content, list):
            for part in content:
                if isinstance(part, ImagePart) or (
                    isinstance(part, dict) and part.get("type") in ("image_url", "input_image")
                ):
                    return True
    return False


async def route(
    state: Routed,
    services: Services,
    dialect: Dialect,
    group: Group,
    request: Request,
    user: UserRecord,
    place: Place,
    send: Send,
    receive: Receive,
    rid: bytes,
    timing: Timing,
    deadline: Deadline,
    hops: int,
    asked: Any,
    translate: Any,
) -> bool:
    """Answer the chat from the first deployment that can; True when the dialect answered
    it itself (a token count's estimate: no chat). ``state`` follows every step."""
    router = services.router
    assert router is not None
    settings = services.settings
    drop = settings.drop_params
    allow_group(user, group.name)
    if request.native is not None and translate(request, drop):
        out = dialect.output(send, rid, timing, request, None, [])
        await out.end()
        return True
    call = request.call
    images = has_images(call)
    stored = await services.profile(user.id)
    operator = ProfileView(services.overrides, Profile(user.id))
    own = ProfileView({}, stored)
    plan = await router.plan(group)
    loop = asyncio.get_running_loop()
    began = loop.time()
    ends = began + settings.max_chat_seconds if settings.max_chat_seconds else None
    policy = replace(services.policy, retries=0)
    last: ChatwireError | None = None
    tried = 0
    try:
        for deployment in plan:
            if tried >= settings.route_attempts or (ends is not None and loop.time() >= ends):
                break
            provider = services.providers[deployment.provider]
            entry = services.catalogue.entry(provider.name, deployment.model)
            reason = None
            if entry is not None and entry.kind != "chat":
                reason = "it is an embedding model"
            elif images and entry is not None and not entry.image_input:
                reason = "the request has images and the model takes none"
            attempt = replace(call, model=deployment.model, params=dict(call.params))
            if reason is None:
                try:
                    view = operator if deployment.key == "operator" else own
                    target = target_for(provider, view, attempt, None)
                    upstream = steps.build_call(provider, target, attempt, entry, drop)
                except (KeyMissing, RequestInvalid) as exc:
                    reason, last = exc.message, exc
            if reason is not None:
                router.skipped[(group.name, deployment.name)] += 1
                log.info(
                    "request %s: group %s skips deployment %s: %s",
                    rid.decode(),
                    group.name,
                    deployment.name,
                    reason,
                )
                continue
            state.provider, state.model, state.deployment = (
                provider,
                deployment.model,
                deployment.name,
            )
            state.size = len(upstream.body)
            place.hold_only(state.size)
            if state.hold is None:
                state.hold = await steps.admit(
                    services, user, provider, deployment.model, state.size, attempt, asked
                )
            ex = steps.exchange(services, provider, target, upstream, timing, hops)
            ex.policy = policy
            state.ex = ex
            family = provider.family
            reader = (
                family.text_reader(provider)
                if dialect.reads_text
                else family.reader(provider, attempt)
            )
            state.reader = reader
            headers = [
                *family.response_headers(provider, attempt),
                (HEADER, deployment.name.encode()),
            ]
            out = dialect.output(send, rid, timing, request, reader, headers)
            state.out = out
            if state.watch is None:
                state.watch = DisconnectWatch(receive)
            watch = state.watch
            tried += 1
            await router.started(group, deployment.name)
            try:
                await steps.relay(ex, reader, out, watch, settings, deadline, began)
            except asyncio.CancelledError:
                if out.started or watch.gone or deadline.fired != FIRST_BYTE:
                    raise
                deadline.took()  # this deployment's first byte is late: the next one
                deadline.fired = None
                error: ChatwireError = first_byte_timeout(ex)
            except Exception as exc:
                if out.started:
                    raise
                error = failure(exc, ex, rid)
                if not fails_over(error):
                    raise error from None
            else:
                first = (timing.answered or time.perf_counter()) - timing.sent
                router.answered(group.name, deployment.name, max(first, 0.0))
                return False
            finally:
                await router.finished(group, deployment.name)
            last = error
            router.failovers[(group.name, deployment.name)] += 1
            log.warning(
                "request %s: group %s, deployment %s failed before its reply: %s",
                rid.decode(),
                group.name,
                deployment.name,
                error.message,
            )
            await router.cool(
                group.name,
                deployment.name,
                retry_after_seconds(getattr(error, "retry_after", None)),
            )
    finally:
        if state.watch is not None:
            state.watch.close()
        deadline.close()
    if last is not None:
        raise last
    raise NotFound(f"No deployment of the group '{group.name}' can take this request.")
