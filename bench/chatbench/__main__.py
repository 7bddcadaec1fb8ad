"""chatwire's benchmark: ``./bench/run [--quick] [--litellm] [--workers N] ...``.

Starts nginx as a fake Mistral, chatwire (both chat APIs), the floor relays when
../shared/bench is there, LiteLLM's proxy with --litellm and Portkey's gateway with
--portkey; measures them in alternating rounds in five phases (short replies, long replies,
one connection at a time, slow streams, many users on PostgreSQL), prints the tables with
each figure's ratio to its reference and the goals, and stops every process it started,
also on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import uvloop

from chatbench import load
from chatbench.procs import Processes, cpu_of_named
from chatbench.report import (
    Figures,
    goals,
    latency_table,
    table,
    team_goals,
    team_table,
    users_table,
)
from chatbench.targets import (
    LITELLM_VERSION,
    PORTKEY_PACKAGE,
    Setup,
    Target,
    asyncpg_url,
    chatwire_command,
    floor_requirements,
    install_baseline,
    install_portkey,
    install_venv,
    make_users,
    non_streamed,
    postgres_database,
    postgres_sessions,
    prepare_chatwire,
    routed,
    routes_env,
    start_chatwire,
    start_floors,
    start_litellm,
    start_portkey,
    upstream_target,
)
from chatbench.upstream import Upstream, start_nginx

PROJECT = Path(__file__).resolve().parents[2]
STREAMS_GOAL = 10_000
USERS_GOAL = 10_000
# The team phase's first bytes are timed this long after a round's load.
SETTLE_S = 2.0
PHASES = ("fast", "long", "sequential", "slow", "users", "team")
# chatwire's default CHATWIRE_CACHE_TTL: how long a token's user and a profile are reused.
CACHE_TTL = 1.0
# ...and CHATWIRE_REDIS_CACHE_TTL's: how long with Redis, which tells every change.
REDIS_CACHE_TTL = 60.0
# File descriptors kept back from the limit for everything but the streams' sockets.
FD_MARGIN = 200


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="1 round, short runs, 1,000 streams, 1,000 users"
    )
    ap.add_argument("--litellm", action="store_true", help=f"add LiteLLM {LITELLM_VERSION}")
    ap.add_argument(
        "--portkey", action="store_true", help=f"add Portkey's gateway (npm {PORTKEY_PACKAGE})"
    )
    ap.add_argument("--workers", type=int, default=1, help="server processes per target")
    ap.add_argument("--rounds", type=int, help="alternating rounds per phase (3; quick 1)")
    ap.add_argument("--seconds", type=float, help="seconds per wrk run (8; quick 3)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    ap.add_argument("--deltas", type=int, default=20, help="deltas in the short reply (20)")
    ap.add_argument("--long-deltas", type=int, default=2000, help="in the long reply (2000)")
    ap.add_argument("--first-byte-requests", type=int, help="per target and round (200; 50)")
    ap.add_argument(
        "--sequential-requests",
        type=int,
        help="sequential phase: requests per target and round, one connection (2000; 300)",
    )
    ap.add_argument(
        "--users", type=int, help=f"users phase: distinct users ({USERS_GOAL:,}; quick 1,000)"
    )
    ap.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="users and team phases: the PostgreSQL server (the bench makes, drops its database)",
    )
    ap.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/0",
        help="team phase: the Redis the limits are counted in (keys of the bench's own prefix)",
    )
    ap.add_argument("--streams", type=int, help=f"slow streams ({STREAMS_GOAL:,}; quick 1,000)")
    ap.add_argument(
        "--drip-seconds", type=float, help="how long a slow stream lasts (40; quick 10)"
    )
    ap.add_argument(
        "--phases", default=",".join(PHASES), help=f"any of {','.join(PHASES)} (all by default)"
    )
    ap.add_argument(
        "--past-fd-limit",
        action="store_true",
        help="open every stream asked for even past the open-files limit (to see the failure)",
    )
    ap.add_argument("--no-floor", action="store_true", help="leave the floor relays out")
    ap.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure chatwire as it was at the git commit REF ('base api', 'base v1')",
    )
    ap.add_argument(
        "--run-dir",
        type=Path,
        help="keep the run here (logs, and the venvs, reused next time); else a temporary one",
    )
    a = ap.parse_args()
    quick = a.quick
    a.rounds = a.rounds or (1 if quick else 3)
    a.seconds = a.seconds or (3.0 if quick else 8.0)
    a.first_byte_requests = a.first_byte_requests or (50 if quick else 200)
    a.streams = a.streams or (1000 if quick else STREAMS_GOAL)
    a.drip_seconds = a.drip_seconds or (10.0 if quick else 40.0)
    a.sequential_requests = a.sequential_requests or (300 if quick else 2000)
    a.users = a.users or (1000 if quick else USERS_GOAL)
    a.phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    unknown = set(a.phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phase(s) {', '.join(sorted(unknown))}: any of {', '.join(PHASES)}")
    return a


def note(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def raise_fd_limit() -> int:
    """Open files up to the hard limit, for this process and every server it starts."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Bench:
    args: argparse.Namespace
    procs: Processes
    setup: Setup
    upstream: Upstream
    fd_limit: int
    figures: dict[str, Figures]
    notes: list[str]
    users: dict[str, Figures]
    team: dict[str, Figures] = field(default_factory=dict)
    # Whether Portkey's streamed replies work: None until it was tried.
    portkey_streams: bool | None = None

    def start_targets(self, kind: str, only: str | None = None) -> list[Target]:
        """Start the servers against the upstream's ``kind`` of reply (only the one serving
        target ``only``, when given) and check each answers a whole reply (slow replies are
        checked by the streams themselves). With Portkey measured non-streamed, the fast and
        sequential phases also have the upstream and chatwire v1 non-streamed, to compare."""
        # The sequential phase relays the short reply, as the fast phase does.
        base = self.upstream.base_url("fast" if kind == "sequential" else kind)
        workers = self.args.workers
        group = None if only is None else only.split(" ")[0]
        targets = []

        def wanted(name: str) -> bool:
            return group is None or group == name

        if wanted("upstream"):
            targets.append(upstream_target(base, self.upstream.pid))
        if wanted("floor") and self.setup.floor_venv is not None:
            # The first floor is the third line of the throughput and latency tables only.
            per_delta = kind != "slow"
            targets += start_floors(self.procs, self.setup, base, workers, per_delta)
        if wanted("chatwire"):
            api, v1 = start_chatwire(
                self.procs, self.setup, base, workers, extra_env=routes_env(self.setup)
            )
            targets += [api, v1]
            if kind in ("fast", "sequential"):
                targets.append(routed(v1))
        if self.setup.baseline is not None and wanted("base"):
            targets += start_chatwire(self.procs, self.setup.baseline, base, workers)
        if wanted("litellm") and self.setup.litellm_venv is not None:
            targets.append(start_litellm(self.procs, self.setup, base, workers))
        portkey = self.setup.portkey_script is not None and wanted("portkey")
        if portkey and not (kind == "long" and self.portkey_streams is False):
            whole = self.upstream.base_url("json")
            target = start_portkey(self.procs, self.setup, base, whole, self.notes)
            self.portkey_streams = target.streamed
            if target.streamed or kind in ("fast", "sequential"):
                targets.append(target)
                if not target.streamed:
                    targets.append(upstream_target(whole, self.upstream.pid, streamed=False))
                    _, v1 = start_chatwire(self.procs, self.setup, whole, workers)
                    targets.append(non_streamed(v1))
            else:
                self.procs.stop_pid(target.pid)
        if only is not None:
            for target in [t for t in targets if t.name != only]:
                keep = {self.upstream.pid} | {t.pid for t in targets if t.name == only}
                if target.pid not in keep:
                    self.procs.stop_pid(target.pid)
            targets = [t for t in targets if t.name == only]
        if kind != "slow":
            for target in targets:
                asyncio.run(load.check(target))
        return targets

    def stop_targets(self, targets: list[Target]) -> None:
        for pid in {t.pid for t in targets} - {self.upstream.pid}:
            self.procs.stop_pid(pid)

    def figures_of(self, target: Target) -> Figures:
        return self.figures.setdefault(
            target.name, Figures(route=target.route, streamed=target.streamed)
        )

    def throughput(self, kind: str, first_bytes: bool) -> None:
        targets = self.start_targets(kind)
        scripts = {t.name: load.wrk_script(t, self.setup.run / f"{t.name}.lua") for t in targets}
        conns, seconds = self.args.connections, self.args.seconds
        for t in targets:  # warm-up, not counted
            load.run_wrk(t, scripts[t.name], conns, 1)
        for number in range(1, self.args.rounds + 1):
            for t in targets:
                result = load.run_wrk(t, scripts[t.name], conns, seconds)
                fig = self.figures_of(t)
                (fig.fast if kind == "fast" else fig.long).append(result)
                fig.long_deltas = self.args.long_deltas
                note(f"{kind} round {number}: {t.name}: {result.rps:,.0f} req/s")
            if first_bytes:
                for t in targets:
                    firsts, _ = load.sequential(t, self.args.first_byte_requests)
                    self.figures_of(t).first_byte_s += firsts
        self.stop_targets(targets)

    def sequential(self) -> None:
        """One connection, one request after another: what each target adds to the
        upstream's first and last byte when nothing else is in flight."""
        targets = self.start_targets("sequential")
        count = self.args.sequential_requests
        for t in targets:  # warm-up, not counted
            load.sequential(t, min(count, 100))
        for number in range(1, self.args.rounds + 1):
            for t in targets:
                firsts, lasts = load.sequential(t, count)
                fig = self.figures_of(t)
                fig.seq_first_s += firsts
                fig.seq_last_s += lasts
                note(
                    f"sequential round {number}: {t.name}: first byte p50 "
                    f"{fig.seq('first', 50):.3f} ms, last byte p50 {fig.seq('last', 50):.3f} ms"
                )
        self.stop_targets(targets)

    def slow_streams(self) -> None:
        names = ["upstream", "chatwire api", "chatwire v1"]
        if self.setup.baseline is not None:
            names += ["base api", "base v1"]
        if self.setup.floor_venv is not None:
            names[1:1] = ["floor batched", "floor passthrough"]
        for name in names:
            # A fresh server for each: memory a process has once held is not given back.
            (target,) = self.start_targets("slow", only=name)
            count = self.args.streams
            # The server holds sockets_per_stream descriptors per stream; this process one.
            fits = (self.fd_limit - FD_MARGIN) // target.sockets_per_stream
            if count > fits and not self.args.past_fd_limit:
                self.notes.append(
                    f"{name}: {count:,} streams need {count * target.sockets_per_stream:,} "
                    f"open files in one process; this machine's hard limit is "
                    f"{self.fd_limit:,} (ulimit -Hn), so {fits:,} streams were held instead."
                )
                count = fits
            note(f"slow streams: {name}: opening {count:,} ...")
            within = self.args.drip_seconds * 3 + count / 200 + 60
            result = uvloop.run(load.hold_streams(target, count, within, lambda s: note(f"  {s}")))
            self.figures_of(target).streams = result
            self.stop_targets([target])

    def many_users(self) -> None:
        """chatwire on PostgreSQL with ``--users`` users, each with a token and a stored
        Mistral key; per API and round: one user's token on every request, then one pass
        over every token (each request a cache miss), then the tokens in turn for a round
        (the steady state)."""
        server = self.args.postgres.rstrip("/")
        database = f"chatwire_bench_{secrets.token_hex(4)}"
        try:
            postgres_database(server, f'CREATE DATABASE "{database}"')
        except Exception as exc:  # any refusal: the phase is skipped, and said so
            self.notes.append(f"users phase skipped: PostgreSQL at {server} refused: {exc!r}")
            return
        try:
            self._many_users(server, database)
        finally:
            postgres_database(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def governance(self) -> None:
        """What the team layer costs: chatwire on PostgreSQL (its usage ledger written for
        every chat either way), called with a token of no policy and no Redis ("limits
        off"), and with a token that has every limit (rpm, tpm, chats at once, a budget),
        counted in Redis ("limits on"); alternating rounds of the fast phase's load and of
        first bytes at one connection."""
        server = self.args.postgres.rstrip("/")
        database = f"chatwire_bench_{secrets.token_hex(4)}"
        try:
            postgres_database(server, f'CREATE DATABASE "{database}"')
        except Exception as exc:  # any refusal: the phase is skipped, and said so
            self.notes.append(f"team phase skipped: PostgreSQL at {server} refused: {exc!r}")
            return
        try:
            self._governance(f"{asyncpg_url(server)}/{database}")
        finally:
            postgres_database(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def _governance(self, database_url: str) -> None:
        run = self.setup.run
        (off_token,) = make_users(self.setup, database_url, 1, run / "logs" / "make-users.log")
        # Limits far above the bench's load: every chat is counted, none refused.
        on_token = chatwire_command(
            self.setup,
            {"CHATWIRE_DATABASE_URL": database_url},
            [
                "tokens",
                "create",
                "bench-00000",
                "--name",
                "limited",
                "--rpm",
                "1000000000",
                "--tpm",
                "2000000000",
                "--parallel",
                "100000",
                "--budget",
                "1000000",
                "--budget-period",
                "day",
            ],
            run / "logs" / "chatwire-cli.log",
        )
        base = self.upstream.base_url("fast")
        workers = self.args.workers
        off = {"CHATWIRE_DATABASE_URL": database_url}
        on = {
            **off,
            "CHATWIRE_REDIS_URL": self.args.redis,
            "CHATWIRE_REDIS_PREFIX": f"chatwire-bench-{secrets.token_hex(4)}:",
        }
        pairs = [
            ("limits off", start_chatwire(self.procs, self.setup, base, workers, off, off_token)),
            ("limits on", start_chatwire(self.procs, self.setup, base, workers, on, on_token)),
        ]
        targets = []
        for label, pair in pairs:
            for t in pair:
                asyncio.run(load.check(t))
                targets.append(
                    (
                        f"{t.name}, {label}",
                        t,
                        load.wrk_script(t, run / f"team-{label}-{t.name}.lua".replace(" ", "-")),
                    )
                )
        conns, seconds = self.args.connections, self.args.seconds
        for _, t, script in targets:  # warm-up, not counted
            load.run_wrk(t, script, conns, 1)
        for number in range(1, self.args.rounds + 1):
            # Every other round in the other order: neither side always runs first.
            for name, t, script in targets if number % 2 else targets[::-1]:
                result = load.run_wrk(t, script, conns, seconds)
                self.team.setdefault(name, Figures(route=t.route)).fast.append(result)
                note(f"team round {number}: {name}: {result.rps:,.0f} req/s")
            # First bytes at rest: the servers' work left from the load (the ledger's batches
            # of the round's rows, the allowances' updates and give-backs) is let finish, then
            # limits off and on take turns request by request, so that the machine's drift
            # falls on both alike (timed right after each one's own wrk run, they measured
            # that backlog, one after the other).
            time.sleep(SETTLE_S)
            for route in ("api", "v1"):
                same = [(name, t) for name, t, _ in targets if t.route == route]
                timed = load.alternating([t for _, t in same], self.args.first_byte_requests)
                for (name, _), firsts in zip(same, timed, strict=True):
                    self.team[name].first_byte_s += firsts
        for _, pair in pairs:
            self.stop_targets(list(pair))

    def _many_users(self, server: str, database: str) -> None:
        count, run = self.args.users, self.setup.run
        database_url = f"{asyncpg_url(server)}/{database}"
        note(f"users: making {count:,} users, tokens and Mistral keys in {database_url} ...")
        started = time.monotonic()
        tokens = make_users(self.setup, database_url, count, run / "logs" / "make-users.log")
        note(f"users: made {len(tokens):,} in {time.monotonic() - started:.1f} s")
        token_file = run / "users-tokens.txt"
        env = {"CHATWIRE_DATABASE_URL": database_url}
        base = self.upstream.base_url("fast")
        # PostgreSQL alone (the caches live CHATWIRE_CACHE_TTL), and, where Redis answers,
        # PostgreSQL with Redis as a fleet runs (CHATWIRE_REDIS_CACHE_TTL, every change told).
        variants: list[tuple[str, dict[str, str], str | None]] = [("", env, None)]
        if redis_answers(self.args.redis):
            own = f"chatwire-bench-{secrets.token_hex(4)}:"
            with_redis = {**env, "CHATWIRE_REDIS_URL": self.args.redis}
            variants.append((" +redis", {**with_redis, "CHATWIRE_REDIS_PREFIX": own}, own))
        else:
            self.notes.append(f"users: Redis at {self.args.redis} did not answer: no +redis rows")
        conns, seconds = self.args.connections, self.args.seconds
        # A pass over every token at no less than 25 req/s, else the pass is cut short.
        first_pass_within = max(seconds, count / 25 + 10)
        plans = []
        pairs = []
        for suffix, variant_env, prefix in variants:
            pair = start_chatwire(
                self.procs, self.setup, base, self.args.workers, variant_env, token=tokens[0]
            )
            pairs.append(pair)
            for started_target in pair:
                t = replace(started_target, name=started_target.name + suffix)
                asyncio.run(load.check(t))
                stem = run / f"users-{t.name}".replace(" ", "-").replace("+", "")
                one = load.wrk_script(t, stem.with_suffix(".one.lua"))
                first = load.rotating_script(t, token_file, stem.with_suffix(".first.lua"), count)
                steady = load.rotating_script(t, token_file, stem.with_suffix(".steady.lua"))
                load.run_wrk(t, one, conns, 1)  # warm-up, not counted
                plans.append((t, one, first, steady, prefix))
        label = f"{count:,} users"
        for number in range(1, self.args.rounds + 1):
            for t, one, first, steady, prefix in plans:
                runs = [(f"{t.name}, 1 user", one, seconds)]
                runs.append((f"{t.name}, {label}, first pass", first, first_pass_within))
                runs.append((f"{t.name}, {label}, steady", steady, seconds))
                for name, script, within in runs:
                    if "first pass" in name:
                        # Every cached token and profile gone: each request a miss.
                        if prefix is None:
                            time.sleep(CACHE_TTL + 0.5)
                        else:
                            forget_everything(self.args.redis, prefix)
                    before = cpu_of_named("postgres")
                    sessions = postgres_sessions(server, database)
                    result = load.run_wrk(t, script, conns, within)
                    fig = self.users.setdefault(name, Figures(route=t.route))
                    fig.fast.append(result)
                    fig.db_cpu_s.append(cpu_of_named("postgres") - before)
                    opened = postgres_sessions(server, database) - sessions
                    fig.db_sessions.append(opened if sessions >= 0 else -1)
                    if "first pass" in name and result.requests < count:
                        self.notes.append(
                            f"users: {name}: {result.requests:,} of {count:,} tokens used "
                            f"within {within:g} s; the pass was cut there"
                        )
                    note(
                        f"users round {number}: {name}: {result.rps:,.0f} req/s "
                        f"({result.requests:,} requests)"
                    )
        steady_rps = [
            f.rps for n, f in self.users.items() if n.endswith("steady") and "+redis" not in n
        ]
        if steady_rps:
            back = count / max(steady_rps)
            self.notes.append(
                f"users: at {max(steady_rps):,.0f} req/s each of the {count:,} tokens came back "
                f"every {back:.1f} s; without Redis chatwire reuses a token's user and a "
                f"profile for CHATWIRE_CACHE_TTL ({CACHE_TTL:g} s by default), so "
                + (
                    "in the steady state too every request looked its token and profile up "
                    "in PostgreSQL; with Redis (+redis) they live CHATWIRE_REDIS_CACHE_TTL "
                    f"({REDIS_CACHE_TTL:g} s by default), every change told at once."
                    if back > CACHE_TTL
                    else "the steady state is served from the cache."
                )
            )
        for pair in pairs:
            self.stop_targets(list(pair))


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def forget_everything(url: str, prefix: str) -> None:
    """Tell the chatwire processes of ``prefix`` to forget every cached caller and profile,
    as after a lost subscription, through chatwire's own change channel, and give them a
    moment to."""
    from chatwire.team.bus import publish_now

    if not publish_now(url, prefix, "all", None):
        raise RuntimeError(f"Redis at {url} did not take the bench's change message")
    time.sleep(0.5)


def install(args: argparse.Namespace, run: Path) -> Setup:
    logs = run / "logs"
    floor_dir = PROJECT.parent / "shared" / "bench"
    floors = [floor_dir / "floor_relay.py", floor_dir / "floor_relay_batched.py"]
    setup = Setup(
        run=run,
        chatwire=PROJECT / ".venv" / "bin" / "chatwire",
        floor_dir=floor_dir if all(f.exists() for f in floors) and not args.no_floor else None,
    )
    if setup.floor_dir is not None:
        setup.floor_venv = run / "floor-venv"
        install_venv(setup.floor_venv, floor_requirements(), logs / "pip.log", "the floor relays")
    if args.litellm:
        setup.litellm_venv = run / "litellm-venv"
        requirement = [f"litellm[proxy]=={LITELLM_VERSION}"]
        install_venv(setup.litellm_venv, requirement, logs / "pip.log", "LiteLLM's proxy")
    if args.portkey:
        setup.portkey_script, setup.portkey_version = install_portkey(run, logs / "npm.log")
        note(f"Portkey's gateway {setup.portkey_version} (one Node process, whatever --workers)")
    prepare_chatwire(setup, logs / "chatwire-cli.log")
    if args.baseline:
        command = install_baseline(PROJECT, args.baseline, run, logs / "pip.log")
        setup.baseline = Setup(run=run, chatwire=command, floor_dir=None, label="base")
        prepare_chatwire(setup.baseline, logs / "base-cli.log")
    return setup


def header(args: argparse.Namespace, figures: dict[str, Figures]) -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    refs = (
        "chatbot-ui rows to 'floor batched', OpenAI-route rows to 'floor passthrough'"
        if "floor batched" in figures
        else "to 'upstream'"
    )
    return (
        f"chatwire bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}\n"
        f"one run, {args.rounds} alternating round(s); {args.workers} worker(s) per server; "
        f"req/s and last byte: wrk, {args.connections} connections, {args.deltas}-delta "
        f"replies, {args.seconds:g} s a round; first byte: 1 connection; CPU per delta: "
        f"{args.long_deltas}-delta replies; RSS per stream: slow streams. "
        f"Ratios are {refs}."
    )


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        note("needs nginx and wrk: apt-get install nginx-light wrk (./bench/run does it)")
        return 2
    fd_limit = raise_fd_limit()
    run = (
        args.run_dir.resolve() if args.run_dir else Path(tempfile.mkdtemp(prefix="chatwire-bench-"))
    )
    run.mkdir(parents=True, exist_ok=True)
    # nginx's worker runs as an unprivileged user and reads the reply files from here.
    run.chmod(0o755)
    (run / "logs").mkdir(parents=True, exist_ok=True)
    note(f"run directory {run} (logs in {run / 'logs'})")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Ctrl-C too: asyncio's own handler would only cancel the current phase's main task.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        with Processes(run / "logs") as procs:
            setup = install(args, run)
            upstream = start_nginx(
                procs, run, args.deltas, args.long_deltas, args.drip_seconds, fd_limit
            )
            bench = Bench(args, procs, setup, upstream, fd_limit, {}, [], {})
            phases: dict[str, Callable[[], None]] = {
                "fast": lambda: bench.throughput("fast", first_bytes=True),
                "long": lambda: bench.throughput("long", first_bytes=False),
                "sequential": bench.sequential,
                "slow": bench.slow_streams,
                "users": bench.many_users,
                "team": bench.governance,
            }
            for phase in args.phases:
                phases[phase]()
    except KeyboardInterrupt:
        note("interrupted: every process the bench started has been stopped")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, load.ReplyBroken) as exc:
        note(f"failed: {exc}")
        return 1
    finally:
        if args.run_dir is None:
            shutil.rmtree(run, ignore_errors=True)
    print(header(args, bench.figures))
    print()
    if any(f.fast or f.long or f.streams for f in bench.figures.values()):
        print(table(bench.figures))
        print()
    if any(f.seq_first_s for f in bench.figures.values()):
        print(
            f"One connection, one request at a time ({args.sequential_requests:,} per target "
            "and round); 'added': against the upstream called directly (its non-streamed reply "
            "for the non-streamed rows):"
        )
        print()
        print(latency_table(bench.figures))
        print()
    if bench.users:
        print(
            f"chatwire on PostgreSQL, {args.users:,} users with a token and a stored Mistral "
            "key each; ratios to the one-user figure of the same API:"
        )
        print()
        print(users_table(bench.users))
        print()
    if bench.team:
        print(
            "chatwire on PostgreSQL writing its usage ledger, limits off (a token with no "
            "policy, no Redis) and on (every limit, counted in Redis); ratios to 'limits off':"
        )
        print()
        print(team_table(bench.team))
        print()
        for line in team_goals(bench.team):
            print(f"- {line}")
    for line in goals(bench.figures, STREAMS_GOAL, bench.users):
        print(f"- {line}")
    for text in dict.fromkeys(bench.notes):
        print(f"- note: {text}")
    for name, fig in {**bench.figures, **bench.users}.items():
        for failure in fig.failures():
            print(f"- errors: {name}: {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
