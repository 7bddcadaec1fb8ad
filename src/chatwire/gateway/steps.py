"""The steps every front door's pipeline shares (chats in ``gateway.pipeline``, embeddings in
``gateway.embeddings``, routed chats in ``routing.chat``): the caller, admission to the
limits, the upstream exchange and its relay, the failures' answers, and the end of a
request (its ledger row, then its limits settled)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Generator
from typing import Any, Protocol

from chatwire.api.asgi import (
    Heads,
    Scope,
    Send,
    closing,
)
from chatwire.catalogue import ModelEntry
from chatwire.core.config import Settings
from chatwire.dialects.base import NativeDialect, Output
from chatwire.errors import (
    BodyTimeout,
    ChatwireError,
    NotFound,
    ReplyTooLarge,
    ReplyTooLong,
    ShuttingDown,
)
from chatwire.families.base import clamp_temperature
from chatwire.gateway.call import ChatCall
from chatwire.gateway.deadline import BODY, CHAT, FIRST_BYTE, Deadline
from chatwire.gateway.failures import failure, first_byte_timeout
from chatwire.gateway.resolve import ProfileView, target_for
from chatwire.gateway.upstream import (
    READ_CHUNK,
    DisconnectWatch,
    Exchange,
    Target,
    UpstreamCall,
    drain,
    open_upstream,
)
from chatwire.providers.declaration import Provider
from chatwire.services import Services
from chatwire.store.records import CustomModel, UserRecord
from chatwire.team.counters import DEFAULT_OUTPUT, Check, Hold
from chatwire.timing import Timing

log = logging.getLogger("chatwire.chat")

STOPPED = ShuttingDown(
    "chatwire is shutting down and stopped this chat before its reply started "
    "(CHATWIRE_SHUTDOWN_GRACE ran out); try again.",
    retry_after=1,
)


# The steps every front door's pipeline shares (chats here, embeddings in ``embeddings``).
class ErrorShape(Protocol):
    """What renders a front door's errors: its dialect."""

    async def send_error(
        self, send: Send, error: ChatwireError, rid: bytes, timing: Timing
    ) -> None: ...


def caller(
    services: Services, scope: Scope, heads: Heads, native: NativeDialect | None = None
) -> Awaitable[UserRecord]:
    """The user whose bearer token the request carries (a 401 without a known one); a native
    dialect says where its clients put it (Anthropic's: ``x-api-key`` too). A plain function
    handing back the lookup to await: no coroutine of its own per request."""
    authorization = heads.authorization if native is None else native.authorization(scope, heads)
    client = scope.get("client")
    address = client[0] if client else ""
    if authorization is not None:
        return services.auth.user_for_authorization(authorization.decode("latin-1"), address)
    # chatwire's own chat page: its session cookie and CSRF token.
    return services.auth.user_for_browser(scope["headers"], "POST", address)


def admit(
    services: Services,
    user: UserRecord,
    provider: Provider,
    model: str,
    size: int,
    call: ChatCall | None,
    asked: Any = None,
) -> Awaitable[Hold | None]:
    """Reserve the chat's place in the caller's limits (``team.limits``), or refuse it (429,
    403, 503); nothing to await, no call at all, for a caller with nothing counted. The
    estimate: the body's ``size`` / 4 in; out, the reply budget the request set (``asked``,
    a native body's, else the call's), else the model's max output, else 4096 (no ``call``:
    embeddings, nothing out)."""
    checks = services.limits.checks(user)
    if checks is None:
        return _NOTHING
    return _admit(services, checks, provider, model, size, call, asked)


async def _admit(
    services: Services,
    checks: list[Check],
    provider: Provider,
    model: str,
    size: int,
    call: ChatCall | None,
    asked: Any,
) -> Hold:
    reply_budget = 0
    if call is not None:
        params = call.params
        given = asked or params.get("max_tokens") or params.get("max_completion_tokens")
        if type(given) is int and given > 0:
            reply_budget = given
        else:
            entry = services.catalogue.entry(provider.name, model)
            reply_budget = (entry.max_output if entry is not None else None) or DEFAULT_OUTPUT
    price = services.prices.price(provider.name, model)
    return await services.limits.admit(
        checks, -(-size // 4), reply_budget, price, f"{provider.name}/{model}"
    )


class _Nothing:
    """An awaitable of None that needs no coroutine."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_NOTHING: Awaitable[None] = _Nothing()


async def ended(
    services: Services,
    user: UserRecord,
    hold: Hold | None,
    rid: bytes,
    route: str,
    timing: Timing,
    provider: Provider | None,
    model: str | None,
    reader: Any,
    out: Any,  # the door's output (a started flag), None before it was made
    fault: BaseException | None,
    watch: DisconnectWatch | None,
    size: int,
    deployment: str | None = None,
) -> None:
    """The end of an authenticated request, however it ended: its ledger row, then its
    limits settled on the row's usage and cost (none when nothing was used, an estimate when
    the reply was cut; the reservation stands when the row could not be made)."""
    try:
        used = services.usage.chat(
            user,
            rid,
            route,
            timing,
            None if provider is None else provider.name,
            None if provider is None else model,
            reader,
            out is not None and out.started,
            fault,
            watch is not None and watch.gone,
            size,
            deployment,
        )
    except Exception:
        log.exception("request %s: its usage was not recorded", rid.decode())
        used = None
    if hold is not None:
        if used is None:
            await services.limits.settle(hold, None, None)
        else:
            await services.limits.settle(hold, used[0].total, used[1])


async def custom_named(services: Services, user_id: int, model: str) -> CustomModel:
    """The caller's custom model whose model id or name is ``model`` (/v1's custom/<model>)."""
    for record in await services.store.list_custom_models(user_id):
        if model in (record.model_id, record.name):
            return record
    raise NotFound(
        f"You have no custom model '{model[:200]}' (GET /v1/models lists yours as custom/<model>)."
    )


def exchange(
    services: Services,
    provider: Provider,
    target: Target,
    upstream: UpstreamCall,
    timing: Timing,
    hops: int,
) -> Exchange:
    """The upstream side of one request: a URL a user set goes only through the session whose
    resolver keeps to the addresses the operator allows, and its errors tell only the status
    (unless the operator asks for more)."""
    if target.user_set:
        ex = Exchange(services.user_http, provider, upstream, services.policy, timing)
        ex.guard = services.upstream_rules
        ex.terse = not services.settings.upstream_error_detail
    else:
        ex = Exchange(services.http, provider, upstream, services.policy, timing)
    ex.hops = hops
    return ex


async def stopped(
    dialect: ErrorShape,
    send: Send,
    watch: DisconnectWatch | None,
    out: Output | None,
    rid: bytes,
    timing: Timing,
) -> bool:
    """After a request was cancelled: True when the server is stopping (the caller lets the
    cancellation go on; a reply not yet started gets the dialect's 503 rather than the
    server's plain-text 500), False when its client went away (the cancellation ends here)."""
    if watch is None or not watch.gone:
        log.warning("request %s: cancelled, the server is stopping", rid.decode())
        if out is None or not out.started:
            await dialect.send_error(send, STOPPED, rid, timing)
        return True
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()
    log.info("request %s: client went away, upstream request cancelled", rid.decode())
    return False


async def failed(
    dialect: ErrorShape,
    send: Send,
    exc: BaseException,
    ex: Exchange | None,
    out: Output | None,
    body_read: bool,
    rid: bytes,
    timing: Timing,
) -> None:
    """A request's failure, mapped once: an error response before its reply started, else as
    the dialect's output says (cut, or an error event)."""
    error = failure(exc, ex, rid)
    if out is None or not out.started:
        # Refused before its body was read whole: the connection closes with it.
        await dialect.send_error(send if body_read else closing(send), error, rid, timing)
        return
    log.warning(
        "request %s: %s failed after the reply started, reply aborted: %s",
        rid.decode(),
        ex.provider.name if ex is not None else "the upstream",
        error.message,
    )
    await out.fail(error)


def expired(
    deadline: Deadline | None,
    watch: DisconnectWatch | None,
    ex: Exchange | None,
    settings: Settings,
) -> ChatwireError | None:
    """After a request was cancelled: the error of the phase whose time ran out when the
    request's deadline cancelled it (the cancellation then ends here), else None."""
    if deadline is None:
        return None
    deadline.close()
    if (watch is not None and watch.gone) or not deadline.took():
        return None
    return out_of_time(deadline, ex, settings)


def upstream_call(
    provider: Provider,
    profile: ProfileView,
    call: ChatCall,
    custom: CustomModel | None,
    entry: ModelEntry | None,
    drop: bool,
) -> UpstreamCall:
    """The provider's request for a resolved call: its target from the caller's credentials,
    chatbot-ui's settings settled, then the family's translation."""
    return build_call(provider, target_for(provider, profile, call, custom), call, entry, drop)


def build_call(
    provider: Provider, target: Target, call: ChatCall, entry: ModelEntry | None, drop: bool
) -> UpstreamCall:
    if call.from_chat_settings:
        settle(call, provider, entry)
    if target.max_tokens is not None and not call.budget_given():
        # A custom model's reply budget from its record.
        call.params["max_tokens"] = target.max_tokens
    return provider.family.build(provider, target, call, entry, drop)


def settle(call: ChatCall, provider: Provider, entry: ModelEntry | None) -> None:
    """chatbot-ui's chat settings as the provider takes them: the temperature clamped to the
    model's range (or none, where the rules send none), the model's max output as the
    budget where the rules send one."""
    rules, params = provider.rules, call.params
    value = clamp_temperature(rules, params.pop("temperature", None), entry)
    if value is not None:
        params["temperature"] = value
    if rules.send_max_tokens and entry is not None and entry.max_output is not None:
        params["max_tokens"] = entry.max_output


async def relay(
    ex: Exchange,
    reader: Any,
    out: Output,
    watch: DisconnectWatch,
    settings: Settings,
    deadline: Deadline,
    began: float | None = None,
) -> None:
    """Relay the reply: its first text within the first-byte timeout, all of it within
    ``CHATWIRE_MAX_CHAT_SECONDS`` and ``CHATWIRE_MAX_REPLY_BYTES`` (an upstream that never
    ends costs a bounded share of the process). The chat's deadline keeps both times: the
    earlier one until the first text, the chat's own after it. ``began``: when the chat's
    time started, when not now (a routed chat's later deployments)."""
    now = asyncio.get_running_loop().time()
    seconds = settings.max_chat_seconds
    ends = (now if began is None else began) + seconds if seconds else None
    # From the first try: aiohttp's read timeout alone restarts with every byte, so headers
    # trickled a byte at a time or a stream of SSE comments (": ping") would hold the client
    # with nothing.
    first = now + ex.policy.first_byte
    if ends is None or first <= ends:
        deadline.move(first, FIRST_BYTE)
    else:
        deadline.move(ends, CHAT)
    max_bytes = settings.max_reply_bytes
    waiting = True
    async with open_upstream(ex) as resp:
        received = 0
        # Whatever arrived in one read (up to READ_CHUNK) is decoded and sent on at once, as
        # one piece; the next read waits for the send, so a slow client slows the upstream
        # instead of piling its reply up here.
        async for block in resp.content.iter_chunked(READ_CHUNK):
            received += len(block)
            if max_bytes and received > max_bytes:
                raise ReplyTooLarge(
                    f"{ex.provider.label}'s reply was larger than {max_bytes} bytes "
                    "(CHATWIRE_MAX_REPLY_BYTES); the rest was not relayed."
                )
            items = reader.feed(block)
            if items:
                if waiting:
                    waiting = False
                    deadline.move(ends, CHAT)
                await out.write(items)
            if reader.finished:
                break
        else:
            items = reader.close()
            if items:
                await out.write(items)
        if waiting:
            deadline.move(ends, CHAT)
        await out.end()
        # The client has had all of it: its leaving no longer cancels anything.
        watch.close()
        await drain(resp)


def out_of_time(deadline: Deadline, ex: Exchange | None, settings: Settings) -> ChatwireError:
    """The error of the phase whose time ran out."""
    if deadline.fired == BODY or ex is None:
        return BodyTimeout(
            f"The request body did not arrive within {settings.body_timeout:g} s "
            "(CHATWIRE_BODY_TIMEOUT)."
        )
    if deadline.fired == FIRST_BYTE:
        return first_byte_timeout(ex)
    return ReplyTooLong(
        f"{ex.provider.label}'s reply took longer than {settings.max_chat_seconds:g} s "
        "(CHATWIRE_MAX_CHAT_SECONDS); the rest was not relayed."
    )
