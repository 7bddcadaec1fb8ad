"""The price table: exact costs from token counts, the price in effect on a day, the
operator's file over the package's, and a clear error for a bad file."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chatwire.team.prices import Prices, PricesError
from chatwire.team.usage import Usage

ANTHROPIC_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 500,
    "prompt_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 50},
}


def test_usage_from_the_canonical_shape() -> None:
    usage = Usage.from_canonical(ANTHROPIC_USAGE)
    assert usage == Usage(input=1000, output=500, cached_input=200, cache_write=100, reasoning=50)
    assert usage.total == 1500
    # Absent, null or nonsense counts are none, never an error.
    assert Usage.from_canonical({"prompt_tokens": None, "completion_tokens": "7"}) == Usage()


def test_every_kind_of_token_is_billed_once_at_its_price() -> None:
    prices = Prices.load()
    cost = prices.cost("anthropic", "claude-sonnet-4-5", Usage.from_canonical(ANTHROPIC_USAGE))
    # 700 plain input at $3, 200 cache reads at $0.30, 100 cache writes at $3.75, 500 output
    # (reasoning included, not priced apart) at $15, per million.
    assert cost == Decimal("0.010035")
    assert isinstance(cost, Decimal)


def test_a_model_without_a_price_has_no_cost_not_zero() -> None:
    assert Prices.load().cost("mistral", "no-such-model", Usage(input=10, output=10)) is None


def test_the_price_in_effect_on_the_day(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"mistral": {"mistral-small-latest": ['
        '{"since": "2026-01-01", "input": "1", "output": "2"},'
        '{"since": "2026-06-01", "input": "0.5", "output": "1", "reasoning": "3"}]},'
        ' "local": {"llama": [{"since": "2020-01-01", "input": "0", "output": "0"}]}}'
    )
    prices = Prices.load(path)
    usage = Usage(input=1_000_000, output=2_000_000, reasoning=1_000_000)
    may = datetime(2026, 5, 31, 23, 59, tzinfo=UTC)
    june = datetime(2026, 6, 1, tzinfo=UTC)
    assert prices.cost("mistral", "mistral-small-latest", usage, may) == Decimal(5)
    assert prices.cost("mistral", "mistral-small-latest", usage, june) == Decimal("4.5")
    # Before its first price a model has none; a free model costs exactly 0.
    assert (
        prices.cost("mistral", "mistral-small-latest", usage, datetime(2025, 1, 1, tzinfo=UTC))
        is None
    )
    assert prices.cost("local", "llama", usage) == Decimal(0)
    # The package's other prices stay.
    assert prices.price("anthropic", "claude-haiku-4-5") is not None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"x": {"m": [{"since": "2026-01-01", "input": "-1", "output": "1"}]}}', "at least 0"),
        ('{"x": {"m": [{"since": "2026-01-01", "input": "1"}]}}', "output"),
        ('{"x": {"m": []}}', "lists no price"),
        ("{nope", "Invalid prices file"),
    ],
)
def test_a_bad_prices_file_is_refused_clearly(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(text)
    with pytest.raises(PricesError, match=says):
        Prices.load(path)
