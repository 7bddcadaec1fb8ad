"""The tables of every target's figures, each with its ratio to its reference, then the
goals checked against them.

Each target stands for one front door: chatbot-ui's route ("api": chatwire api, the
floors that relay text) is compared with the batched floor, the OpenAI route ("v1":
chatwire v1, the peers, the upstream itself) with the passthrough floor."""

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
    # One connection, one request at a time (the sequential phase): seconds to the first
    # body bytes and to the last byte of each reply.
    seq_first_s: list[float] = field(default_factory=list)
    seq_last_s: list[float] = field(default_factory=list)
    route: str = "v1"
    streamed: bool = True
    # The users phase: PostgreSQL's CPU seconds (all its processes) across each wrk run,
    # and the connections opened to chatwire's database in it.
    db_cpu_s: list[float] = field(default_factory=list)
    db_sessions: list[int] = field(default_factory=list)

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
    def db_cpu_per_request_us(self) -> float:
        done = sum(r.requests for r in self.fast)
        return sum(self.db_cpu_s) / done * 1e6 if done and self.db_cpu_s else math.nan

    @property
    def db_sessions_per_1000(self) -> float:
        done = sum(r.requests for r in self.fast)
        if not done or not self.db_sessions or min(self.db_sessions) < 0:
            return math.nan
        return sum(self.db_sessions) / done * 1000

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

    def seq(self, which: str, pct: int) -> float:
        samples = self.seq_first_s if which == "first" else self.seq_last_s
        return _percentile(samples, pct) * 1000

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


REFERENCES = {"api": "floor batched", "v1": "floor passthrough"}


def reference_of(figures: dict[str, Figures], f: Figures) -> str:
    """The name of the figures ``f`` is compared with: its route's floor, else the upstream."""
    name = REFERENCES.get(f.route, "upstream")
    return name if name in figures else "upstream"


def table(figures: dict[str, Figures]) -> str:
    head = ["target", *(name for name, _, _ in COLUMNS)]
    rows = [head, ["---"] * len(head)]
    for name, f in figures.items():
        ref = figures.get(reference_of(figures, f), Figures())
        rows.append([name, *(_cell(get(f), get(ref), form) for _, get, form in COLUMNS)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def upstream_of(figures: dict[str, Figures], f: Figures) -> Figures | None:
    """The upstream called directly with the same kind of reply (streamed or not)."""
    return figures.get("upstream" if f.streamed else "upstream (non-streamed)")


def latency_table(figures: dict[str, Figures]) -> str:
    """The sequential phase: one connection, one request at a time; each percentile with
    what it adds to the upstream's own (called directly, the same kind of reply)."""
    head = ["target", "requests"]
    for which in ("first byte", "last byte"):
        head += [f"{which} p50 ms", f"{which} p99 ms", f"{which} added p50", "added p99"]
    rows = [head, ["---"] * len(head)]
    for name, f in figures.items():
        if not f.seq_first_s:
            continue
        up = upstream_of(figures, f)
        row = [name, f"{len(f.seq_first_s):,}"]
        for which in ("first", "last"):
            p50, p99 = f.seq(which, 50), f.seq(which, 99)
            row += [f"{p50:.3f}", f"{p99:.3f}"]
            if up is None or up is f:
                row += ["-", "-"]
            else:
                row += [f"{p50 - up.seq(which, 50):+.3f}", f"{p99 - up.seq(which, 99):+.3f}"]
        rows.append(row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def users_table(figures: dict[str, Figures]) -> str:
    """The users phase: each row with its ratio to the one-user figure of its API."""
    head = ["target", "req/s", "last byte p50 ms", "last byte p99 ms", "CPU µs/request"]
    head += ["PostgreSQL CPU µs/request", "connections opened per 1,000 requests"]
    rows = [head, ["---"] * len(head)]
    for name, f in figures.items():
        one = figures.get(name.split(",")[0] + ", 1 user", Figures())
        rows.append(
            [
                name,
                _cell(f.rps, one.rps, ",.0f"),
                _cell(f.last_p50, one.last_p50, ".2f"),
                _cell(f.last_p99, one.last_p99, ".2f"),
                _cell(f.cpu_per_request_us, one.cpu_per_request_us, ",.0f"),
                _cell(f.db_cpu_per_request_us, one.db_cpu_per_request_us, ",.0f"),
                _cell(f.db_sessions_per_1000, math.nan, ",.1f"),
            ]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def team_table(figures: dict[str, Figures]) -> str:
    """The team phase: each row with its ratio to the 'limits off' row of its API."""
    head = ["target", "req/s", "last byte p50 ms", "first byte p50 ms", "CPU µs/request"]
    rows = [head, ["---"] * len(head)]
    for name, f in figures.items():
        off = figures.get(name.split(",")[0] + ", limits off", Figures())
        rows.append(
            [
                name,
                _cell(f.rps, off.rps, ",.0f"),
                _cell(f.last_p50, off.last_p50, ".2f"),
                _cell(f.first_p50, off.first_p50, ".3f"),
                _cell(f.cpu_per_request_us, off.cpu_per_request_us, ",.0f"),
            ]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def team_goals(figures: dict[str, Figures]) -> list[str]:
    """The team issue's goals: limits on keep >= 0.9x of the requests/s with them off, and
    add <= 0.1 ms to the first byte (p50, one connection)."""
    lines = []
    for name, f in figures.items():
        if not name.endswith("limits on"):
            continue
        api = name.split(",")[0]
        off = figures.get(f"{api}, limits off")
        if off is None:
            continue
        # Each round's two runs are close in time, the rounds far apart: the median of the
        # rounds' own ratios, which a slower or faster spell of the machine moves less than
        # the ratio of the two medians (printed in the table).
        rounds = [_over(on.rps, o.rps) for on, o in zip(f.fast, off.fast, strict=False)]
        ratio = statistics.median(rounds) if rounds else math.nan
        added = f.first_p50 - off.first_p50
        lines.append(
            f"{api}: limits on {ratio:.3f}x the req/s with them off, the median of the "
            f"rounds' ratios ({', '.join(f'{r:.2f}' for r in rounds)}) (goal >= 0.9): "
            f"{_verdict(ratio >= 0.9)}"
        )
        lines.append(
            f"{api}: limits on add {added:+.3f} ms p50 to the first byte (goal <= 0.1): "
            f"{_verdict(added <= 0.1)}"
        )
    return lines


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _over(mine: float, theirs: float) -> float:
    """``mine / theirs``; NaN when ``theirs`` is zero or not a figure (no goal is met on it:
    a target that completed no request within a round has no rate to compare with)."""
    if theirs == 0 or math.isnan(theirs) or math.isnan(mine):
        return math.nan
    return mine / theirs


def against_baseline(figures: dict[str, Figures]) -> list[str]:
    """With --baseline: each chat API against the same API at the baseline commit, in the same
    run: requests/s within 5%, CPU per delta and added first-byte time not higher."""
    lines = []
    for api in ("api", "v1"):
        mine, base = figures.get(f"chatwire {api}"), figures.get(f"base {api}")
        if mine is None or base is None:
            continue
        if mine.fast and base.fast:
            ratio = _over(mine.rps, base.rps)
            lines.append(
                f"chatwire {api}: {ratio:.3f}x the baseline's req/s (gate >= 0.95): "
                f"{_verdict(ratio >= 0.95)}"
            )
        if mine.long and base.long:
            ratio = _over(mine.cpu_per_delta_us, base.cpu_per_delta_us)
            lines.append(
                f"chatwire {api}: {mine.cpu_per_delta_us:.2f} CPU µs per delta against the "
                f"baseline's {base.cpu_per_delta_us:.2f} ({ratio:.3f}x; gate: not higher): "
                f"{_verdict(ratio <= 1.0)}"
            )
        added, before = added_first_byte(figures, mine), added_first_byte(figures, base)
        if added is not None and before is not None:
            lines.append(
                f"chatwire {api}: adds {added[0]:.3f} ms p50 to the first byte against the "
                f"baseline's {before[0]:.3f} ({added[1]}; gate: not higher): "
                f"{_verdict(added[0] <= before[0])}"
            )
    return lines


def added_first_byte(figures: dict[str, Figures], f: Figures) -> tuple[float, str] | None:
    """Milliseconds ``f`` adds to the upstream's first byte at p50, and where that was
    measured: the sequential phase when it ran, else the fast phase's first bytes."""
    up = upstream_of(figures, f)
    if up is None:
        return None
    if f.seq_first_s and up.seq_first_s:
        return f.seq("first", 50) - up.seq("first", 50), "sequential phase"
    if f.first_byte_s and up.first_byte_s:
        return f.first_p50 - up.first_p50, "fast phase"
    return None


def _peers(figures: dict[str, Figures]) -> list[str]:
    lines = []
    v1, lite = figures.get("chatwire v1"), figures.get("litellm")
    if v1 is not None and v1.fast and lite is not None and lite.fast:
        ratio = _over(v1.rps, lite.rps)
        if math.isnan(ratio):
            lines.append(
                "chatwire v1: LiteLLM completed no request within its rounds, so there is no "
                "ratio (goal >= 50x): run longer rounds (--seconds)"
            )
        else:
            lines.append(
                f"chatwire v1: {ratio:.0f}x LiteLLM's req/s (goal >= 50): {_verdict(ratio >= 50)}"
            )
    for peer in ("portkey", "portkey (non-streamed)"):
        theirs = figures.get(peer)
        if theirs is None or not theirs.fast:
            continue
        mine_name = "chatwire v1" if theirs.streamed else "chatwire v1 (non-streamed)"
        mine = figures.get(mine_name)
        if mine is None or not mine.fast:
            continue
        ratio = _over(mine.rps, theirs.rps)
        lines.append(
            f"{mine_name}: {ratio:.2f}x {peer}'s req/s, {mine.rps:,.0f} against "
            f"{theirs.rps:,.0f} (goal: ahead, > 1): {_verdict(ratio > 1)}"
        )
        if theirs.seq_first_s and mine.seq_first_s:
            lines.append(
                f"{mine_name}: whole reply p50 {mine.seq('last', 50):.3f} ms at one connection, "
                f"{peer}'s {theirs.seq('last', 50):.3f} ms"
            )
    return lines


def users_goals(users: dict[str, Figures]) -> list[str]:
    """Many users against one, in the same phase: the steady state >= 0.8x of one user."""
    lines = []
    for api in ("chatwire api", "chatwire v1", "chatwire api +redis", "chatwire v1 +redis"):
        one = users.get(f"{api}, 1 user")
        if one is None or not one.fast:
            continue
        for name, f in users.items():
            if not name.startswith(f"{api},") or f is one or not f.fast:
                continue
            ratio = _over(f.rps, one.rps)
            label = name.removeprefix(f"{api}, ")
            if "steady" in name:
                lines.append(
                    f"{api}: {label}: {ratio:.2f}x the one-user req/s (goal >= 0.8): "
                    f"{_verdict(ratio >= 0.8)}"
                )
            else:
                lines.append(f"{api}: {label}: {ratio:.2f}x the one-user req/s")
    return lines


def goals(
    figures: dict[str, Figures], streams_goal: int, users: dict[str, Figures] | None = None
) -> list[str]:
    """The goals, each with the figure it rests on (skipped when not measured)."""
    lines = against_baseline(figures)
    for name, share in (("chatwire api", 0.9), ("chatwire v1", 0.8)):
        mine = figures.get(name)
        if mine is None:
            continue
        ref_name = REFERENCES[mine.route]
        ref = figures.get(ref_name)
        if ref is not None and mine.fast and ref.fast:
            ratio = _over(mine.rps, ref.rps)
            lines.append(
                f"{name}: {ratio:.2f}x {ref_name}'s req/s (goal >= {share}): "
                f"{_verdict(ratio >= share)}"
            )
        added = added_first_byte(figures, mine)
        if added is not None:
            ms, where = added
            lines.append(
                f"{name}: adds {ms:.3f} ms p50 to the upstream's first byte at one "
                f"connection ({where}; goal <= 0.2 ms): {_verdict(ms <= 0.2)}"
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
    lines += _peers(figures)
    lines += users_goals(users or {})
    return lines
