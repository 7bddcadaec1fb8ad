"""What tokens cost: a price table shipped as data, which the operator can override.

The package carries ``prices.json``: per provider and model, a list of prices, each with the
date it took effect (``since``, UTC), in US dollars per million tokens, written as strings so
they stay exact. ``CHATWIRE_PRICES_FILE`` names a JSON file of the same shape whose models
replace the package's (a model's whole list), so an operator can add a model, a negotiated
price or tomorrow's price change without touching code.

A cost is computed from the provider's token counts in ``Decimal``: never rounded, never a
float. A model with no price has no cost (None), which the ledger records as unpriced; it is
never counted as $0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from chatwire.team.usage import Usage

MILLION = Decimal(1_000_000)


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """US dollars per million tokens, from ``since`` on. Cache reads, cache writes and
    reasoning are billed at the input and output prices unless priced apart."""

    since: date
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    def cost(self, usage: Usage) -> Decimal:
        """The exact cost of ``usage`` at this price."""
        cached = usage.cached_input
        written = usage.cache_write
        reasoning = min(usage.reasoning, usage.output)
        # A provider's total input counts its cache reads and writes; each is billed once.
        total = (
            max(usage.input - cached - written, 0) * self.input
            + (usage.output - reasoning) * self.output
        )
        if cached:
            total += cached * _or(self.cached_input, self.input)
        if written:
            total += written * _or(self.cache_write, self.input)
        if reasoning:
            total += reasoning * _or(self.reasoning, self.output)
        return total / MILLION

    def estimate(self, input_tokens: int, output_tokens: int) -> Decimal:
        """What a chat of about this many tokens may cost, at the dearest rates it could meet
        (a reservation against a budget must not come in low)."""
        dearest_input = max(self.input, _or(self.cache_write, self.input))
        dearest_output = max(self.output, _or(self.reasoning, self.output))
        return (input_tokens * dearest_input + output_tokens * dearest_output) / MILLION


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


class PricesError(ValueError):
    pass


Table = dict[str, dict[str, list[Price]]]


@dataclass(frozen=True, slots=True)
class Prices:
    # provider -> model -> prices, the newest first.
    models: Table
    # (provider, model) -> the UTC day (days since 1970) and the price in effect that day.
    _today: dict[tuple[str, str], tuple[int, Price | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def load(cls, operator_file: Path | None = None) -> Prices:
        shipped = resources.files("chatwire").joinpath("prices.json").read_bytes()
        table = _parse(shipped, "the price table")
        if operator_file is not None:
            try:
                data = operator_file.read_bytes()
            except OSError as exc:
                raise PricesError(f"Cannot read prices file {operator_file}: {exc}") from exc
            for provider, models in _parse(data, f"prices file {operator_file}").items():
                table.setdefault(provider, {}).update(models)
        return cls(table)

    def price(self, provider: str, model: str, at: datetime | None = None) -> Price | None:
        """The price of ``provider/model`` in effect at ``at`` (now by default; looked up
        once a day per model)."""
        if at is None:
            day_number = int(time.time() // 86_400)
            known = self._today.get((provider, model))
            if known is not None and known[0] == day_number:
                return known[1]
            found = self.price(provider, model, datetime.fromtimestamp(day_number * 86_400, UTC))
            if len(self._today) >= 10_000:
                self._today.clear()
            self._today[(provider, model)] = (day_number, found)
            return found
        prices = self.models.get(provider, {}).get(model)
        if not prices:
            return None
        day = at.astimezone(UTC).date()
        for price in prices:
            if price.since <= day:
                return price
        return None

    def cost(
        self, provider: str, model: str, usage: Usage, at: datetime | None = None
    ) -> Decimal | None:
        """The exact cost of ``usage``; None when the model has no price then."""
        price = self.price(provider, model, at)
        return None if price is None else price.cost(usage)

    def priced(self) -> Iterable[tuple[str, str]]:
        for provider, models in self.models.items():
            for model in models:
                yield provider, model


def _parse(data: bytes, source: str) -> Table:
    try:
        raw: Any = msgspec.json.decode(data, type=dict[str, dict[str, list[Price]]])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PricesError(f"Invalid {source}: {exc}") from exc
    table: Table = raw
    for provider, models in table.items():
        for model, prices in models.items():
            if not prices:
                raise PricesError(f"Invalid {source}: {provider}/{model} lists no price.")
            for price in prices:
                for name in ("input", "output", "cached_input", "cache_write", "reasoning"):
                    value = getattr(price, name)
                    if value is not None and (not value.is_finite() or value < 0):
                        raise PricesError(
                            f"Invalid {source}: {provider}/{model}'s {name} price "
                            f"must be a number of dollars of at least 0, not {value}."
                        )
            prices.sort(key=lambda price: price.since, reverse=True)
    return table
