"""One table of every target's figures, each with its ratio to the reference, then the
issue's goals checked against them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from chatbench.load import StreamsResult, WrkRound


@dataclass
class Figures:
    """Everything measured for one target in one run."""

    fast: list[WrkRound] = field(default_factory=list)
    long: list[WrkRound] = field(default_factory=list)
    first_byte_s: list[float] = field(default_factory=list)
    streams: StreamsResult | None = None
    long_deltas: int = 0

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.fast) if self.fast else math.nan

    @property
    def last_p50(self) -> float:
        return statistics.median(r.p50_ms for r in self.fast) if self.fast else math.nan

    @property
    def last_p99(self) -> float:
        return statistics.median(r.p99_ms for r in self.fast) if self.fast else math.nan

    @property
    def first_p50(self) -> float:
        return _percentile(self.first_byte_s, 50) * 1000

    @property
    def first_p99(self) -> float:
        return _percentile(self.first_byte_s, 99) * 1000

    @property
    def cpu_per_request_us(self) -> float:
        done = sum(r.requests for r in self.fast)
        return sum(r.cpu_s for r in self.fast) / done * 1e6 if done else math.nan

    @property
    def cpu_per_delta_us(self) -> float:
        deltas = sum(r.requests for r in self.long) * self.long_deltas
        return sum(r.cpu_s for r in self.long) / deltas * 1e6 if deltas else math.nan

    @property
    def kib_per_stream(self) -> float:
        s = self.streams
        if s is None or not s.most_open:
            return math.nan
        return (s.peak_rss - s.base_rss) / s.most_open / 1024

    def failures(self) -> list[str]:
        found = {r.failures for r in self.fast + self.long if r.failures}
        if self.streams is not None and self.streams.failed:
            s = self.streams
            found.add(f"{s.failed} of {s.streams} slow streams failed, first: {s.first_failure}")
        return sorted(found)


def _percentile(samples: list[float], pct: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else math.nan
    cuts: list[float] = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[pct - 1]


Column = tuple[str, Callable[[Figures], float], str]
COLUMNS: list[Column] = [
    ("req/s", lambda f: f.rps, ",.0f"),
    ("last byte p50 ms", lambda f: f.last_p50, ".2f"),
    ("last byte p99 ms", lambda f: f.last_p99, ".2f"),
    ("first byte p50 ms", lambda f: f.first_p50, ".3f"),
    ("first byte p99 ms", lambda f: f.first_p99, ".3f"),
    ("CPU µs/request", lambda f: f.cpu_per_request_us, ",.0f"),
    ("CPU µs/delta", lambda f: f.cpu_per_delta_us, ".2f"),
    ("RSS KiB/stream", lambda f: f.kib_per_stream, ".1f"),
]


def _cell(value: float, reference: float, form: str) -> str:
    if math.isnan(value):
        return "-"
    if math.isnan(reference) or reference == 0:
        return format(value, form)
    return f"{value:{form}} ({value / reference:.2f}x)"


def table(figures: dict[str, Figures], reference: str) -> str:
    ref = figures[reference]
    head = ["target", *(name for name, _, _ in COLUMNS)]
    rows = [head, ["---"] * len(head)]
    for name, f in figures.items():
        rows.append([name, *(_cell(get(f), get(ref), form) for _, get, form in COLUMNS)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def against_baseline(figures: dict[str, Figures]) -> list[str]:
    """With --baseline: each chat API against the same API at the baseline commit, in the same
    run: requests/s within 5%, CPU per delta and added first-byte time not higher."""
    lines = []
    up = figures.get("upstream")
    for api in ("api", "v1"):
        mine, base = figures.get(f"chatwire {api}"), figures.get(f"base {api}")
        if mine is None or base is None:
            continue
        if mine.fast and base.fast:
            ratio = mine.rps / base.rps
            lines.append(
                f"chatwire {api}: {ratio:.3f}x the baseline's req/s (gate >= 0.95): "
                f"{_verdict(ratio >= 0.95)}"
            )
        if mine.long and base.long:
            ratio = mine.cpu_per_delta_us / base.cpu_per_delta_us
            lines.append(
                f"chatwire {api}: {mine.cpu_per_delta_us:.2f} CPU µs per delta against the "
                f"baseline's {base.cpu_per_delta_us:.2f} ({ratio:.3f}x; gate: not higher): "
                f"{_verdict(ratio <= 1.0)}"
            )
        if up is not None and mine.first_byte_s and base.first_byte_s:
            added, before = mine.first_p50 - up.first_p50, base.first_p50 - up.first_p50
            lines.append(
                f"chatwire {api}: adds {added:.3f} ms p50 to the first byte against the "
                f"baseline's {before:.3f} (gate: not higher): {_verdict(added <= before)}"
            )
    return lines


def goals(figures: dict[str, Figures], streams_goal: int) -> list[str]:
    """The issue's goals, each with the figure it rests on (skipped when not measured)."""
    lines = against_baseline(figures)
    floor, lite, up = figures.get("floor"), figures.get("litellm"), figures.get("upstream")
    for name, share in (("chatwire api", 0.9), ("chatwire v1", 0.85)):
        mine = figures.get(name)
        if mine is None:
            continue
        if floor is not None and mine.fast:
            ratio = mine.rps / floor.rps
            lines.append(
                f"{name}: {ratio:.2f}x the floor's req/s (goal >= {share}): "
                f"{_verdict(ratio >= share)}"
            )
        if name == "chatwire v1" and lite is not None and lite.fast:
            ratio = mine.rps / lite.rps
            lines.append(
                f"{name}: {ratio:.0f}x LiteLLM's req/s (goal >= 40): {_verdict(ratio >= 40)}"
            )
        if up is not None and mine.first_byte_s:
            added = mine.first_p50 - up.first_p50
            lines.append(
                f"{name}: adds {added:.3f} ms p50 to the first byte (goal <= 1 ms): "
                f"{_verdict(added <= 1)}"
            )
        if mine.long:
            per = mine.cpu_per_delta_us
            lines.append(
                f"{name}: {per:.2f} CPU µs per relayed delta (goal <= 10): {_verdict(per <= 10)}"
            )
        s = mine.streams
        if s is not None:
            gib = s.peak_rss / 2**30
            held = s.failed == 0 and gib <= 1
            verdict = _verdict(held and s.most_open >= streams_goal)
            if held and s.most_open == s.streams < streams_goal:
                verdict = (
                    f"met for the {s.streams:,} streams this machine's open-files limit allows"
                )
            lines.append(
                f"{name}: {s.most_open:,} streams open at once of {s.streams:,}, "
                f"{s.completed:,} complete, {s.failed} failed, peak RSS {gib:.2f} GiB "
                f"(goal {streams_goal:,} streams, 0 failed, <= 1 GiB): {verdict}"
            )
    return lines
