"""Everything a request needs, built once in the app's lifespan and closed with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import aiohttp
from async_lru import alru_cache
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.api.admission import Admission
from chatwire.api.auth import CACHE_ENTRIES, Authenticator
from chatwire.api.throttle import FailureThrottle
from chatwire.catalogue import Catalogue, ModelEntry
from chatwire.core.config import Settings
from chatwire.gateway.guard import AddressRules, GuardedResolver
from chatwire.gateway.lines import DECODE_ERRORS, SHAPE_ERRORS
from chatwire.gateway.upstream import READ_CHUNK, UpstreamPolicy, upstream_socket
from chatwire.memory import HeapTrimmer
from chatwire.providers.declaration import Provider
from chatwire.providers.registry import build_providers, operator_values
from chatwire.routing.groups import Group, RoutesInvalid, load_routes
from chatwire.routing.router import Router
from chatwire.store.crypto import KeyBox, load_secret_keys
from chatwire.store.db import make_engine, make_reader
from chatwire.store.ledger import Ledger
from chatwire.store.records import CredentialField, CustomModel, Profile
from chatwire.store.repo import Store
from chatwire.store.responses import ResponseStore
from chatwire.store.web import WebStore
from chatwire.team.accounting import Accounts
from chatwire.team.bus import Bus, listener
from chatwire.team.counters import MemoryCounters
from chatwire.team.limits import Limits, Spent
from chatwire.team.prices import Prices
from chatwire.team.redis_counters import RedisCounters, redis_client

log = logging.getLogger("chatwire")

# Seconds a provider's own list of models is reused.
DISCOVERY_TTL = 10.0
# Seconds between two deletions of expired Responses API replies, and between two rolls of
# the usage ledger.
PRUNE_EVERY = 3600.0
# Seconds from a start to the first of each. Not at once: the first requests of a process
# (and of a fleet started together) do not wait behind them, and a server that runs for less
# than this (the test suite's hundreds of them) spends nothing on them: about 45 ms of CPU
# per start on an empty SQLite database, mostly compiling the statements for a new engine.
FIRST_PRUNE_AFTER = 60.0
ProfileLookup = Callable[[int], Awaitable[Profile]]
# What changed (``Services.changed``), and its subject:
#   "token"          a token revoked, renamed or its policy changed: the token's id
#   "user"           a user's role or policy changed: the user's id
#   "default"        the operator's default policy changed: None
#   "profile"        a user's provider keys or settings changed: the user's id (None: anyone's)
#   "custom_models"  a user's custom models changed: the user's id
Change = Literal["token", "user", "default", "profile", "custom_models"]
CHANGES: tuple[Change, ...] = typing.get_args(Change)
# Told of every change after this process has forgotten what it cached of it, to carry it
# to the other processes (which call ``Services.forget``, not ``changed``, on receiving it).
ChangeListener = Callable[[Change, int | None], None]
CustomLookup = Callable[[int, str], Awaitable[CustomModel | None]]


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    store: Store
    # The web pages' sessions and chats.
    web: WebStore
    auth: Authenticator
    profile: ProfileLookup
    custom_model: CustomLookup
    # Credential field -> the operator's value from the environment, over every profile.
    overrides: dict[str, str] = field(repr=False)
    catalogue: Catalogue
    providers: dict[str, Provider]
    policy: UpstreamPolicy
    http: aiohttp.ClientSession
    # For base URLs and endpoints users set: resolves and connects only where the rules let.
    user_http: aiohttp.ClientSession
    upstream_rules: AddressRules
    user_resolver: GuardedResolver = field(repr=False)
    admission: Admission
    # The Responses API's stored replies.
    responses: ResponseStore
    # The policies' counters (team.limits), and what models cost (CHATWIRE_PRICES_FILE).
    limits: Limits
    prices: Prices
    # Every chat's usage: its ledger row (written in batches) and this process's counters.
    usage: Accounts
    # Changes told to every process through Redis (team.bus); None without Redis.
    bus: Bus | None = None
    # The routes file's groups by public name, and their router (None: no routes file).
    routes: dict[str, Group] | None = None
    router: Router | None = None
    # Model names that stand for another (CHATWIRE_MODEL_ALIASES).
    aliases: dict[str, str] = field(default_factory=dict)
    # Returns the heap's free memory to the system after a burst (chatwire.memory).
    trimmer: asyncio.Task[None] | None = field(default=None, repr=False)
    # Deletes the stored replies past CHATWIRE_RESPONSES_RETENTION_DAYS.
    pruner: asyncio.Task[None] | None = field(default=None, repr=False)
    # Told of every change (``changed``), to carry it to the other processes.
    change_listeners: list[ChangeListener] = field(default_factory=list, repr=False)
    # Announcements on their way to Redis (kept so they are not collected half done).
    _telling: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    # Rolls the usage ledger's rows past CHATWIRE_USAGE_RETENTION_DAYS into daily sums.
    roller: asyncio.Task[None] | None = field(default=None, repr=False)
    # With Redis: forgets the caches every CHATWIRE_CACHE_TTL while the changes go unheard.
    unheard: asyncio.Task[None] | None = field(default=None, repr=False)
    # The store's engine of autocommit lookups (PostgreSQL; ``db.make_reader``).
    reader: AsyncEngine | None = field(default=None, repr=False)
    # Provider name -> when its models were last asked for, and what it answered.
    _discovered: dict[str, tuple[float, list[tuple[str, ModelEntry]]]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    async def start(cls, settings: Settings, fields: Mapping[str, CredentialField]) -> Services:
        """``fields``: the credential fields profiles have (``Store``)."""
        engine = make_engine(settings.resolved_database_url, settings.db_timeout)
        reader = make_reader(settings.resolved_database_url, settings.db_timeout)
        store = Store(engine, KeyBox(load_secret_keys(settings)), fields, reader)
        web = WebStore(engine)
        ttl = cache_lifetime(settings)
        profile: ProfileLookup = (
            alru_cache(maxsize=CACHE_ENTRIES, ttl=ttl)(store.get_profile)
            if ttl > 0
            else store.get_profile
        )

        async def find_custom(user_id: int, record_id: str) -> CustomModel | None:
            if not (record_id.isascii() and record_id.isdigit() and len(record_id) < 10):
                return None
            return await store.get_custom_model(user_id, int(record_id))

        custom: CustomLookup = (
            alru_cache(maxsize=CACHE_ENTRIES, ttl=ttl)(find_custom) if ttl > 0 else find_custom
        )
        policy = UpstreamPolicy(
            connect=settings.connect_timeout,
            first_byte=settings.first_byte_timeout,
            idle=settings.idle_timeout,
            retries=settings.upstream_retries,
            backoff=settings.retry_backoff,
            max_wait=settings.retry_max_wait,
        )
        rules = AddressRules.parse(settings.upstream_allow, settings.upstream_deny)
        # One pool per process: every upstream request reuses these keep-alive connections.
        http = _session(
            policy,
            aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, socket_factory=upstream_socket),
        )
        resolver = GuardedResolver(rules)
        user_http = _session(
            policy,
            aiohttp.TCPConnector(
                limit=0, ttl_dns_cache=300, resolver=resolver, socket_factory=upstream_socket
            ),
        )
        trimmer = asyncio.create_task(HeapTrimmer().run(), name="chatwire heap trimmer")
        responses = ResponseStore(engine, settings.responses_retention_days)
        pruner = None
        if settings.responses_retention_days:
            pruner = asyncio.create_task(
                _prune(responses, settings.responses_retention_days),
                name="chatwire responses pruner",
            )
        ledger = Ledger(engine)
        ledger.start()
        usage = Accounts(ledger, Prices.load(settings.prices_file))
        # The daily rollups the reports read, and retention: with any retention (0 too).
        roller = asyncio.create_task(
            _roll(ledger, settings.usage_retention_days), name="chatwire usage roller"
        )
        limits, bus = _team(settings, ledger)
        providers = build_providers(settings)
        router = _router(settings, providers, limits)
        services = cls(
            routes=None if router is None else router.groups,
            router=router,
            limits=limits,
            bus=bus,
            prices=usage.prices,
            usage=usage,
            roller=roller,
            trimmer=trimmer,
            aliases=settings.alias_map,
            pruner=pruner,
            responses=responses,
            settings=settings,
            engine=engine,
            reader=reader,
            store=store,
            web=web,
            auth=Authenticator(
                store.user_for_token,
                ttl,
                settings.db_max_waiting,
                FailureThrottle(settings.auth_failures_per_minute),
                session_lookup=web.user_for_session,
            ),
            profile=profile,
            custom_model=custom,
            overrides=operator_values(settings),
            catalogue=Catalogue.load(settings.models_file),
            providers=providers,
            policy=policy,
            http=http,
            user_http=user_http,
            upstream_rules=rules,
            user_resolver=resolver,
            admission=Admission(
                settings.max_streams, settings.max_streams_per_user, settings.body_memory
            ),
        )
        await limits.warm()
        if bus is not None:
            # Changes heard from every process are forgotten here; this one's are told.
            bus.bind(services.heard)
            services.change_listeners.append(services._tell)
            bus.start()
            if ttl > settings.cache_ttl:
                services.unheard = asyncio.create_task(
                    services.expire_unheard(bus, settings.cache_ttl),
                    name="chatwire cache expiry",
                )
        return services

    async def expire_unheard(self, bus: Bus, every: float) -> None:
        """While the changes channel is not heard (not yet subscribed, or the subscription
        lost), forget everything cached every ``every`` seconds (CHATWIRE_CACHE_TTL): what
        is cached then lives no longer than it would without Redis. While it is heard, a
        change drops what it touches at once, and entries live CHATWIRE_REDIS_CACHE_TTL."""
        while True:
            await asyncio.sleep(every)
            if not bus.subscribed.is_set():
                self.heard("all", None)

    def heard(self, kind: str, subject: Any) -> None:
        """A change another process (or a command) made, told through Redis: forgotten
        here. One this process does not know, or "all" (the subscription was lost and
        messages may have been missed), forgets everything."""
        if kind in CHANGES and (subject is None or isinstance(subject, int)):
            self.forget(kind, subject)
        else:
            for every in CHANGES:
                self.forget(every)

    def _tell(self, kind: Change, subject: int | None) -> None:
        """Carry this process's change to the others (``Services.changed``'s listener)."""
        if self.bus is None:
            return
        task = asyncio.create_task(self.bus.publish(kind, subject), name="chatwire announce")
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    def changed(self, kind: Change, subject: int | None = None) -> None:
        """Something the caches hold changed in the store (``Change`` says what, and of
        whom): this process forgets it at once, and the listeners carry it on to the others.
        Every place that makes such a change calls this, after the change is committed."""
        self.forget(kind, subject)
        for tell in self.change_listeners:
            try:
                tell(kind, subject)
            except Exception:
                log.warning("a listener failed on the change %s %s", kind, subject, exc_info=True)

    def forget(self, kind: Change, subject: int | None = None) -> None:
        """This process's part of ``changed``: drop what its caches hold of the change.

        A token, a user or the default changes who may do what: every cached caller is
        dropped (the cache is keyed by token, not by user; such changes are rare, and each
        caller's next request costs one indexed read). A profile drops that user's profile,
        custom models the custom-model lookups."""
        if kind in ("token", "user", "default"):
            self.auth.forget_all()
        elif kind == "profile":
            if subject is None:
                _clear(self.profile)
            else:
                invalidate = getattr(self.profile, "cache_invalidate", None)
                if invalidate is not None:
                    invalidate(subject)
        elif kind == "custom_models":
            _clear(self.custom_model)

    async def discovered(self, provider: Provider) -> list[tuple[str, ModelEntry]]:
        """The models a provider's own server lists (a local Ollama), asked at most every
        DISCOVERY_TTL seconds; none, quietly, when it does not answer (it is not running)."""
        now = time.monotonic()
        cached = self._discovered.get(provider.name)
        if cached is not None and now - cached[0] < DISCOVERY_TTL:
            return cached[1]
        try:
            found = await provider.family.discover(self.http, provider) or []
        except (aiohttp.ClientError, TimeoutError, *DECODE_ERRORS, *SHAPE_ERRORS) as exc:
            log.debug("%s lists no models: %r", provider.label, exc)
            found = []
        self._discovered[provider.name] = (now, found)
        return found

    async def close(self) -> None:
        await self.limits.close()
        if self.bus is not None:
            await self.bus.close()
        if self.limits.redis is not None:
            await self.limits.redis.client.aclose()
        for task in (self.trimmer, self.pruner, self.roller, self.unheard):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.usage.ledger.close()  # the rows still buffered
        await self.http.close()
        await self.user_http.close()
        await self.user_resolver.close()  # a connector closes only a resolver of its own
        await self.engine.dispose()
        if self.reader is not None:
            await self.reader.dispose()


def cache_lifetime(settings: Settings) -> float:
    """Seconds a token's caller, a profile or a custom model is kept (0: not cached): with
    Redis, CHATWIRE_REDIS_CACHE_TTL, since every change is told to every process at once
    (and ``expire_unheard`` covers the spells when it is not); without, CHATWIRE_CACHE_TTL,
    the bound on how late a change made in another process is seen."""
    if settings.redis_url is None or settings.cache_ttl == 0:
        return settings.cache_ttl
    return max(settings.cache_ttl, settings.redis_cache_ttl)


def _clear(cached: object) -> None:
    clear = getattr(cached, "cache_clear", None)
    if clear is not None:
        clear()


def _team(settings: Settings, ledger: Ledger) -> tuple[Limits, Bus | None]:
    """The limits' counters and the change bus: in Redis when CHATWIRE_REDIS_URL is set
    (one client, every call bounded by CHATWIRE_REDIS_TIMEOUT and never retried: a Redis
    that does not answer is down until it does, see ``Limits``), else in memory only."""
    # What the ledger says was spent since a budget's period began, for its first count
    # after a start (or after Redis forgot it).
    spent = _spent_in(ledger)
    lease = (settings.max_chat_seconds or 86_400.0) + settings.lease_grace
    if settings.redis_url is None:
        return Limits(MemoryCounters(), lease_seconds=lease, spent=spent), None
    url = settings.redis_url.get_secret_value()
    client = redis_client(url, settings.redis_timeout)
    limits = Limits(
        MemoryCounters(),
        RedisCounters(client, settings.redis_prefix),
        failure=settings.redis_failure,
        streams_per_user=settings.max_streams_per_user,
        lease_seconds=lease,
        spent=spent,
        where=_where(url),
    )
    return limits, Bus(client, listener(url, settings.redis_timeout), settings.redis_prefix)


def _router(settings: Settings, providers: dict[str, Provider], limits: Limits) -> Router | None:
    """The routes file's groups and their router; cooldowns and in-flight counts shared
    through the limits' Redis client when there is one."""
    if settings.routes_file is None:
        return None
    groups = load_routes(settings.routes_file, providers)
    for group in groups.values():
        for deployment in group.deployments:
            if providers[deployment.provider].uses_custom_models:
                raise RoutesInvalid(
                    f"{settings.routes_file}: group '{group.name}', deployment "
                    f"'{deployment.name}': field 'provider': custom models cannot be routed."
                )
    given = operator_values(settings)
    for group in groups.values():
        for deployment in group.deployments:
            provider = providers[deployment.provider]
            if deployment.key == "operator" and provider.key and not given.get(provider.key):
                variable = next(
                    (c.env for c in provider.credentials if c.field == provider.key), provider.key
                )
                log.warning(
                    "routes: group '%s', deployment '%s' takes the operator's key, and %s is "
                    "not set: its chats will skip it",
                    group.name,
                    deployment.name,
                    variable,
                )
    redis = None if limits.redis is None else limits.redis.client
    lease = (settings.max_chat_seconds or 86_400.0) + settings.lease_grace
    return Router(groups, settings.route_cooldown, redis, settings.redis_prefix, lease)


def _spent_in(ledger: Ledger) -> Spent:
    """The ledger's figure of what a user or token spent since a time (all of it: None)."""

    async def spent(
        kind: Literal["token", "user"], subject: int, since: datetime | None
    ) -> Decimal:
        start = since if since is not None else datetime(1970, 1, 1, tzinfo=UTC)
        if kind == "user":
            return await ledger.spent(start, user_id=subject)
        return await ledger.spent(start, token_id=subject)

    return spent


def _where(url: str) -> str:
    """Redis's address for the logs: without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or 6379}" if parts.hostname else url.split("@")[-1]


async def _prune(responses: ResponseStore, days: float) -> None:
    """Delete the expired stored replies FIRST_PRUNE_AFTER seconds after the start and every
    PRUNE_EVERY seconds from then on; a database that does not answer is tried again next
    time. Every process sharing the database does this: the deletions are idempotent."""
    await asyncio.sleep(FIRST_PRUNE_AFTER)
    while True:
        try:
            removed = await responses.prune(days)
        except Exception:
            log.warning("deleting expired stored responses failed", exc_info=True)
        else:
            if removed:
                log.info("deleted %d stored responses older than %g days", removed, days)
        await asyncio.sleep(PRUNE_EVERY)


async def _roll(ledger: Ledger, days: float) -> None:
    """Add the ledger's new rows to the daily rollups and delete the rows past the retention
    period (``days``; 0: none), FIRST_PRUNE_AFTER seconds after the start and every
    PRUNE_EVERY seconds from then on; exact from every process sharing the database at once."""
    await asyncio.sleep(FIRST_PRUNE_AFTER)
    while True:
        try:
            deleted = await ledger.roll(days)
        except Exception:
            log.warning("rolling up the usage ledger failed", exc_info=True)
        else:
            if deleted:
                log.info("deleted %d usage rows older than %g days (rolled up)", deleted, days)
        await asyncio.sleep(PRUNE_EVERY)


def _session(policy: UpstreamPolicy, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=policy.connect, sock_read=policy.first_byte
        ),
        read_bufsize=READ_CHUNK,
        skip_auto_headers=("User-Agent",),
    )
