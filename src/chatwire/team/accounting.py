"""What one chat used and cost, as it ends: its ledger row and this process's counters.

Every chat (and embeddings request) that passed authentication ends here once, whatever
became of it (``Accounts.chat``, from the pipelines' ``finally``):

- **outcome**: ``complete`` (the reply went out whole), ``cancelled`` (the client went away),
  ``aborted`` (it failed after the reply started, or the server stopped it), ``refused`` (a
  limit: 429, a model or budget refusal: 403, chatwire full: 503), ``invalid`` (any other
  4xx: a bad body, an unknown model), ``upstream_error`` (the provider failed, or chatwire
  did, before the reply started).
- **tokens**: the provider's usage as reported, when the reply completed with one. Otherwise
  (no usage reported, or the reply cut before it) an estimate, marked ``estimated``: input
  as reported if it was (Anthropic and Gemini tell it before the text), else the bytes of the
  request sent upstream / 4 rounded up; output the larger of what was reported so far and the
  characters of text, reasoning and tool-call arguments relayed / 4 rounded up. A chat that
  ended before any reply (refused, invalid, an upstream error) used no tokens.
- **cost**: ``Prices.cost`` at the chat's time; None for a model without a price (never $0),
  with one warning per model per process and a counter. A chat of no tokens costs 0.

The counters (tokens by kind and cost, by provider and model; unpriced chats; outcomes) are
plain integers here, read by ``/metrics`` at scrape time: the hot path pays a few dict
updates per chat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chatwire.api.asgi import ClientGone
from chatwire.errors import (
    ChatwireError,
    LimitsUnavailable,
    Overloaded,
    ShuttingDown,
    UpstreamError,
)
from chatwire.store.ledger import Ledger
from chatwire.store.records import UserRecord
from chatwire.team.prices import Prices
from chatwire.team.usage import Usage
from chatwire.timing import Timing

log = logging.getLogger("chatwire.usage")

OUTCOMES = ("complete", "upstream_error", "aborted", "cancelled", "refused", "invalid")
KINDS = ("input", "cached_input", "cache_write", "output", "reasoning")
# The ledger's name of each front door, by its route.
DOORS = {
    "/api/chat/<provider>": "chatbot-ui",
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/embeddings": "embeddings",
}
MAX_NAME = 200
ZERO = Decimal(0)


def door(route: str) -> str:
    return DOORS.get(route, route[:24])


def outcome(fault: BaseException | None, started: bool, gone: bool) -> str:
    """How a chat ended, from what stopped it (None: nothing did)."""
    if gone or isinstance(fault, ClientGone):
        return "cancelled"
    if fault is None:
        return "complete"
    if started or isinstance(fault, asyncio.CancelledError):
        return "aborted"
    if isinstance(fault, UpstreamError) or not isinstance(fault, ChatwireError):
        return "upstream_error"
    if fault.status in (403, 429) or isinstance(
        fault, Overloaded | ShuttingDown | LimitsUnavailable
    ):
        return "refused"
    if 400 <= fault.status < 500:
        return "invalid"
    return "upstream_error"


def estimate(reported: Usage | None, size: int, relayed: int) -> Usage:
    """The usage of a reply cut before its usage, or without one (see the module's doc)."""
    given = reported or Usage()
    return Usage(
        input=given.input or -(-size // 4),
        output=max(given.output, -(-relayed // 4)),
        cached_input=given.cached_input,
        cache_write=given.cache_write,
        reasoning=given.reasoning,
        estimated=True,
    )


class Sums:
    """One provider/model's counters in this process: tokens by kind (``KINDS``), the
    priced chats' dollars, the unpriced chats."""

    __slots__ = ("cost", "tokens", "unpriced")

    def __init__(self) -> None:
        self.tokens = [0, 0, 0, 0, 0]
        self.cost = Decimal(0)
        self.unpriced = 0


class Accounts:
    """The chats' ledger rows and counters of one process."""

    def __init__(self, ledger: Ledger, prices: Prices) -> None:
        self.ledger = ledger
        self.prices = prices
        self.models: dict[tuple[str, str], Sums] = {}
        self.outcomes: Counter[str] = Counter()
        self._warned: set[tuple[str, str]] = set()

    def chat(
        self,
        user: UserRecord,
        rid: bytes,
        route: str,
        timing: Timing,
        provider: str | None,
        model: str | None,
        reader: Any,
        started: bool,
        fault: BaseException | None,
        gone: bool,
        size: int,
        deployment: str | None = None,
    ) -> tuple[Usage, Decimal | None]:
        """Account for one chat as it ends: its ledger row and this process's counters; its
        usage and cost, as the row has them (what the limits settle on too). It runs once
        per chat, on the hot path: a handful of dict operations, one price, one row."""
        took = time.perf_counter() - timing.arrived
        how = "complete" if fault is None and not gone else outcome(fault, started, gone)
        reported = getattr(reader, "usage", None)
        usage = Usage.from_canonical(reported) if reported else None
        if how == "complete" and usage is not None:
            pass
        elif reader is not None and (started or how in ("complete", "cancelled", "aborted")):
            usage = estimate(usage, size, getattr(reader, "relayed", 0))
        else:
            usage = Usage()  # ended before any reply: nothing used
        at = datetime.fromtimestamp(time.time() - max(took, 0.0), UTC)
        cost: Decimal | None = ZERO
        self.outcomes[how] += 1
        if (usage.input or usage.output) and provider is not None and model is not None:
            cost = self.prices.cost(provider, model, usage, at)
            key = (provider, model)
            sums = self.models.get(key)
            if sums is None:
                sums = self.models[key] = Sums()
            tokens = sums.tokens
            tokens[0] += usage.input
            tokens[1] += usage.cached_input
            tokens[2] += usage.cache_write
            tokens[3] += usage.output
            tokens[4] += usage.reasoning
            if cost is None:
                sums.unpriced += 1
                if key not in self._warned:
                    self._unpriced(provider, model)
            else:
                sums.cost += cost
        answered = timing.answered
        self.ledger.add(
            {
                "at": at,
                "request_id": rid.decode("latin-1")[:64],
                "user_id": user.id,
                "token_id": user.token_id,
                "dialect": DOORS.get(route) or route[:24],
                "provider": None if provider is None else provider[:MAX_NAME],
                "model": None if model is None else model[:MAX_NAME],
                "deployment": None if deployment is None else deployment[:MAX_NAME],
                "outcome": how,
                "input_tokens": usage.input,
                "cached_input_tokens": usage.cached_input,
                "cache_write_tokens": usage.cache_write,
                "output_tokens": usage.output,
                "reasoning_tokens": usage.reasoning,
                "estimated": usage.estimated,
                "cost": cost,
                "priced": cost is not None,
                "first_byte_ms": round((answered - timing.arrived) * 1000) if answered else None,
                "duration_ms": round(took * 1000),
            }
        )
        return usage, cost

    def _unpriced(self, provider: str, model: str) -> None:
        self._warned.add((provider, model))
        log.warning(
            "%s/%s has no price (chatwire's price table, CHATWIRE_PRICES_FILE): its chats "
            "are recorded with no cost, flagged unpriced",
            provider[:MAX_NAME],
            model[:MAX_NAME],
        )
