"""GET /metrics: this process's figures in Prometheus's text format.

Read at scrape time, so the hot path pays nothing: chats open now, the process's asyncio
tasks, the objects frozen out of the collector's reach at startup, and the standard process
figures (open file descriptors, resident memory, CPU). Each worker process answers for
itself. No secrets: counts only.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.datastructures import State

from chatwire.routing.router import Router
from chatwire.services import Services
from chatwire.team.accounting import KINDS

router = APIRouter(tags=["health"])


class _Live(Collector):
    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        services: Services = self._state.services
        yield GaugeMetricFamily(
            "chatwire_open_chats", "Chat requests this process holds now.", services.admission.open
        )
        yield GaugeMetricFamily(
            "chatwire_asyncio_tasks",
            "Tasks alive in this process's event loop.",
            len(asyncio.all_tasks()),
        )
        yield GaugeMetricFamily(
            "chatwire_gc_frozen_objects",
            "Objects gc.freeze() put out of the collector's reach after startup "
            "(chatwire serve freezes; an app served by another program leaves it to that one).",
            gc.get_freeze_count(),
        )
        limits = services.limits
        if limits.redis is not None:
            yield GaugeMetricFamily(
                "chatwire_redis_up",
                "1 while the Redis the limits are shared in answers, 0 while it does not "
                "(CHATWIRE_REDIS_FAILURE says what chats get meanwhile).",
                1 if limits.up else 0,
            )
            yield CounterMetricFamily(
                "chatwire_redis_outages",
                "Times this process found Redis not answering.",
                limits.outages,
            )
            yield CounterMetricFamily(
                "chatwire_redis_errors",
                "Redis calls of this process that failed or timed out.",
                limits.errors,
            )
            yield GaugeMetricFamily(
                "chatwire_redis_settlements_waiting",
                "Chats' settlements Redis did not take yet, made once it answers again.",
                limits.waiting,
            )
            yield CounterMetricFamily(
                "chatwire_redis_settlements_late",
                "Settlements made late, once Redis answered again.",
                limits.replayed,
            )
            allowances = limits.allowances
            if allowances is not None:
                yield CounterMetricFamily(
                    "chatwire_limits_allowances",
                    "Allowances (shares of limits reserved ahead for several chats) Redis "
                    "granted this process.",
                    allowances.granted,
                )
                yield CounterMetricFamily(
                    "chatwire_limits_allowances_refused",
                    "Allowances Redis refused (a limit without room for one).",
                    allowances.refused,
                )
                yield CounterMetricFamily(
                    "chatwire_limits_allowance_chats",
                    "Chats admitted from an allowance, with no round trip to Redis.",
                    allowances.chats,
                )
        yield from _usage(services)
        if services.router is not None:
            yield from _routing(services.router)


def _routing(router: Router) -> Iterable[Metric]:
    """Per deployment of each group (``routing.router``): chats it was asked, failures
    that moved a chat on, cooldowns, skips, and its time to first byte."""
    labels = ["group", "deployment"]
    for name, help_text, counts in (
        ("chatwire_route_attempts", "Chats a deployment was asked.", router.attempts),
        (
            "chatwire_route_failovers",
            "Failures of a deployment before its reply began (the chat moved on).",
            router.failovers,
        ),
        ("chatwire_route_cooldowns", "Times a deployment was put in cooldown.", router.cooldowns),
        (
            "chatwire_route_skips",
            "Chats a deployment could not take (no key, no image input...).",
            router.skipped,
        ),
    ):
        family = CounterMetricFamily(name, help_text, labels=labels)
        for key, count in sorted(counts.items()):
            family.add_metric(list(key), count)
        yield family
    first = SummaryMetricFamily(
        "chatwire_route_first_byte_seconds",
        "Time from asking a deployment to its reply's first byte.",
        labels=labels,
    )
    for key, count in sorted(router.first_byte_count.items()):
        first.add_metric(list(key), count, router.first_byte_sum.get(key, 0.0))
    yield first
    latency = GaugeMetricFamily(
        "chatwire_route_latency_seconds",
        "A deployment's decayed time to first byte (the latency strategy's figure).",
        labels=labels,
    )
    for key, value in sorted(router.latency.items()):
        latency.add_metric(list(key), value)
    yield latency


def _usage(services: Services) -> Iterable[Metric]:
    """The usage ledger's counters (``team.accounting``): tokens and dollars by provider and
    model, chats without a price, chats by outcome, rows written and dropped."""
    accounts = services.usage
    tokens = CounterMetricFamily(
        "chatwire_usage_tokens",
        "Tokens of the chats this process served, by provider, model and kind (input counts "
        "cached_input and cache_write; output counts reasoning).",
        labels=["provider", "model", "kind"],
    )
    models = sorted(accounts.models.items())
    for (provider, model), sums in models:
        for kind, count in zip(KINDS, sums.tokens, strict=True):
            if count:
                tokens.add_metric([provider, model, kind], count)
    yield tokens
    cost = CounterMetricFamily(
        "chatwire_usage_cost_dollars",
        "US dollars the priced chats of this process cost, by provider and model.",
        labels=["provider", "model"],
    )
    for (provider, model), sums in models:
        cost.add_metric([provider, model], float(sums.cost))
    yield cost
    unpriced = CounterMetricFamily(
        "chatwire_usage_unpriced_chats",
        "Chats of models with no price (recorded with no cost), by provider and model.",
        labels=["provider", "model"],
    )
    for (provider, model), sums in models:
        if sums.unpriced:
            unpriced.add_metric([provider, model], sums.unpriced)
    yield unpriced
    outcomes = CounterMetricFamily(
        "chatwire_usage_chats", "Chats this process recorded, by outcome.", labels=["outcome"]
    )
    for outcome, count in sorted(accounts.outcomes.items()):
        outcomes.add_metric([outcome], count)
    yield outcomes
    ledger = accounts.ledger
    yield CounterMetricFamily(
        "chatwire_usage_rows_written", "Ledger rows this process wrote.", ledger.written
    )
    yield CounterMetricFamily(
        "chatwire_usage_rows_dropped",
        "Ledger rows this process dropped (its buffer full, the database not answering).",
        ledger.dropped,
    )


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry | None = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        registry.register(_Live(request.app.state))
        request.app.state.metrics_registry = registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
