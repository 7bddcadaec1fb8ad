"""Everything a request needs, built once in the app's lifespan and closed with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from async_lru import alru_cache
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.api.admission import Admission
from chatwire.api.auth import Authenticator
from chatwire.api.throttle import FailureThrottle
from chatwire.catalogue import Catalogue, ModelEntry
from chatwire.core.config import Settings
from chatwire.gateway.guard import AddressRules, GuardedResolver
from chatwire.gateway.lines import DECODE_ERRORS, SHAPE_ERRORS
from chatwire.gateway.upstream import READ_CHUNK, UpstreamPolicy, upstream_socket
from chatwire.memory import HeapTrimmer
from chatwire.providers.declaration import Provider
from chatwire.providers.registry import build_providers, operator_values
from chatwire.store.crypto import KeyBox, load_secret_keys
from chatwire.store.db import make_engine
from chatwire.store.ledger import Ledger
from chatwire.store.records import CredentialField, CustomModel, Profile
from chatwire.store.repo import Store
from chatwire.store.responses import ResponseStore
from chatwire.store.web import WebStore
from chatwire.team.accounting import Accounts
from chatwire.team.prices import Prices

log = logging.getLogger("chatwire")

# Seconds a provider's own list of models is reused.
DISCOVERY_TTL = 10.0
# Seconds between two deletions of expired Responses API replies (the first at start).
PRUNE_EVERY = 3600.0
ProfileLookup = Callable[[int], Awaitable[Profile]]
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
    # Every chat's usage: its ledger row (written in batches) and this process's counters.
    usage: Accounts
    # Model names that stand for another (CHATWIRE_MODEL_ALIASES).
    aliases: dict[str, str] = field(default_factory=dict)
    # Returns the heap's free memory to the system after a burst (chatwire.memory).
    trimmer: asyncio.Task[None] | None = field(default=None, repr=False)
    # Deletes the stored replies past CHATWIRE_RESPONSES_RETENTION_DAYS.
    pruner: asyncio.Task[None] | None = field(default=None, repr=False)
    # Rolls the usage ledger's rows past CHATWIRE_USAGE_RETENTION_DAYS into daily sums.
    roller: asyncio.Task[None] | None = field(default=None, repr=False)
    # Provider name -> when its models were last asked for, and what it answered.
    _discovered: dict[str, tuple[float, list[tuple[str, ModelEntry]]]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    async def start(cls, settings: Settings, fields: Mapping[str, CredentialField]) -> Services:
        """``fields``: the credential fields profiles have (``Store``)."""
        engine = make_engine(settings.resolved_database_url, settings.db_timeout)
        store = Store(engine, KeyBox(load_secret_keys(settings)), fields)
        web = WebStore(engine)
        ttl = settings.cache_ttl
        profile: ProfileLookup = (
            alru_cache(maxsize=10_000, ttl=ttl)(store.get_profile) if ttl > 0 else store.get_profile
        )

        async def find_custom(user_id: int, record_id: str) -> CustomModel | None:
            if not (record_id.isascii() and record_id.isdigit() and len(record_id) < 10):
                return None
            return await store.get_custom_model(user_id, int(record_id))

        custom: CustomLookup = (
            alru_cache(maxsize=10_000, ttl=ttl)(find_custom) if ttl > 0 else find_custom
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
        roller = None
        if settings.usage_retention_days:
            roller = asyncio.create_task(
                _roll(ledger, settings.usage_retention_days), name="chatwire usage roller"
            )
        return cls(
            usage=usage,
            roller=roller,
            trimmer=trimmer,
            aliases=settings.alias_map,
            pruner=pruner,
            responses=responses,
            settings=settings,
            engine=engine,
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
            providers=build_providers(settings),
            policy=policy,
            http=http,
            user_http=user_http,
            upstream_rules=rules,
            user_resolver=resolver,
            admission=Admission(
                settings.max_streams, settings.max_streams_per_user, settings.body_memory
            ),
        )

    def profile_changed(self, user_id: int) -> None:
        invalidate = getattr(self.profile, "cache_invalidate", None)
        if invalidate is not None:
            invalidate(user_id)

    def custom_models_changed(self) -> None:
        clear = getattr(self.custom_model, "cache_clear", None)
        if clear is not None:
            clear()

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
        for task in (self.trimmer, self.pruner, self.roller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.usage.ledger.close()  # the rows still buffered
        await self.http.close()
        await self.user_http.close()
        await self.user_resolver.close()  # a connector closes only a resolver of its own
        await self.engine.dispose()


async def _prune(responses: ResponseStore, days: float) -> None:
    """Delete the expired stored replies now and every PRUNE_EVERY seconds; a database that
    does not answer is tried again next time. Every process sharing the database does this:
    the deletions are idempotent."""
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
    """Sum the ledger's rows past the retention period into daily rows, now and every
    PRUNE_EVERY seconds; idempotent and safe from every process sharing the database."""
    while True:
        try:
            moved = await ledger.roll(days)
        except Exception:
            log.warning("rolling up the usage ledger's old rows failed", exc_info=True)
        else:
            if moved:
                log.info("rolled %d usage rows older than %g days into daily sums", moved, days)
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
