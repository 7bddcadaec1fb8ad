"""chatwire's benchmark: ``./bench/run [--quick] [--litellm] [--workers N] ...``.

Starts nginx as a fake Mistral, chatwire (both chat APIs), the floor relay when
../shared/bench is there, and LiteLLM's proxy with --litellm; measures them in alternating
rounds in three phases (short replies, long replies, slow streams), prints one table with
each figure's ratio to the reference and the issue's goals, and stops every process it
started, also on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvloop

from chatbench import load
from chatbench.procs import Processes
from chatbench.report import Figures, goals, table
from chatbench.targets import (
    LITELLM_VERSION,
    Setup,
    Target,
    floor_requirements,
    install_baseline,
    install_venv,
    prepare_chatwire,
    start_chatwire,
    start_floor,
    start_litellm,
    upstream_target,
)
from chatbench.upstream import Upstream, start_nginx

PROJECT = Path(__file__).resolve().parents[2]
STREAMS_GOAL = 10_000
# File descriptors kept back from the limit for everything but the streams' sockets.
FD_MARGIN = 200


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short rounds, 1,000 streams (~2 min)")
    ap.add_argument("--litellm", action="store_true", help=f"add LiteLLM {LITELLM_VERSION}")
    ap.add_argument("--workers", type=int, default=1, help="server processes per target")
    ap.add_argument("--rounds", type=int, help="alternating rounds per phase (3; quick 1)")
    ap.add_argument("--seconds", type=float, help="seconds per wrk run (8; quick 3)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    ap.add_argument("--deltas", type=int, default=20, help="deltas in the short reply (20)")
    ap.add_argument("--long-deltas", type=int, default=2000, help="in the long reply (2000)")
    ap.add_argument("--first-byte-requests", type=int, help="per target and round (200; 50)")
    ap.add_argument("--streams", type=int, help=f"slow streams ({STREAMS_GOAL:,}; quick 1,000)")
    ap.add_argument("--drip-seconds", type=float, help="how long a slow stream lasts (40; 15)")
    ap.add_argument(
        "--phases", default="fast,long,slow", help="any of fast,long,slow (all by default)"
    )
    ap.add_argument(
        "--past-fd-limit",
        action="store_true",
        help="open every stream asked for even past the open-files limit (to see the failure)",
    )
    ap.add_argument("--no-floor", action="store_true", help="leave the floor relay out")
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
    a.drip_seconds = a.drip_seconds or (15.0 if quick else 40.0)
    a.phases = [p.strip() for p in a.phases.split(",") if p.strip()]
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

    def start_targets(self, kind: str, only: str | None = None) -> list[Target]:
        """Start the servers against the upstream's ``kind`` of reply (only the one serving
        target ``only``, when given) and check each answers a whole reply (slow replies are
        checked by the streams themselves)."""
        base = self.upstream.base_url(kind)
        workers = self.args.workers
        wanted = {"upstream", "floor", "chatwire", "litellm"} if only is None else {only}
        targets = []
        if "upstream" in wanted:
            targets.append(upstream_target(base, self.upstream.pid))
        if "floor" in wanted and self.setup.floor_venv is not None:
            targets.append(start_floor(self.procs, self.setup, base, workers))
        if wanted & {"chatwire", "chatwire api", "chatwire v1"}:
            both = start_chatwire(self.procs, self.setup, base, workers)
            targets += [t for t in both if only in (None, "chatwire", t.name)]
        if self.setup.baseline is not None and wanted & {"chatwire", "base api", "base v1"}:
            both = start_chatwire(self.procs, self.setup.baseline, base, workers)
            targets += [t for t in both if only in (None, "chatwire", t.name)]
        if "litellm" in wanted and self.setup.litellm_venv is not None:
            targets.append(start_litellm(self.procs, self.setup, base, workers))
        if kind != "slow":
            for target in targets:
                asyncio.run(load.check(target))
        return targets

    def stop_targets(self, targets: list[Target]) -> None:
        for pid in {t.pid for t in targets} - {self.upstream.pid}:
            self.procs.stop_pid(pid)

    def throughput(self, kind: str, first_bytes: bool) -> None:
        targets = self.start_targets(kind)
        scripts = {t.name: load.wrk_script(t, self.setup.run / f"{t.name}.lua") for t in targets}
        conns, seconds = self.args.connections, self.args.seconds
        for t in targets:  # warm-up, not counted
            load.run_wrk(t, scripts[t.name], conns, 1)
        for number in range(1, self.args.rounds + 1):
            for t in targets:
                result = load.run_wrk(t, scripts[t.name], conns, seconds)
                fig = self.figures.setdefault(t.name, Figures())
                (fig.fast if kind == "fast" else fig.long).append(result)
                fig.long_deltas = self.args.long_deltas
                note(f"{kind} round {number}: {t.name}: {result.rps:,.0f} req/s")
            if first_bytes:
                for t in targets:
                    times = asyncio.run(load.first_bytes(t, self.args.first_byte_requests))
                    self.figures[t.name].first_byte_s += times
        self.stop_targets(targets)

    def slow_streams(self) -> None:
        names = ["upstream", "chatwire api", "chatwire v1"]
        if self.setup.baseline is not None:
            names += ["base api", "base v1"]
        if self.setup.floor_venv is not None:
            names.insert(1, "floor")
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
            self.figures.setdefault(name, Figures()).streams = result
            self.stop_targets([target])


def install(args: argparse.Namespace, run: Path) -> Setup:
    logs = run / "logs"
    floor_app = PROJECT.parent / "shared" / "bench" / "floor_relay.py"
    setup = Setup(
        run=run,
        chatwire=PROJECT / ".venv" / "bin" / "chatwire",
        floor_app=floor_app if floor_app.exists() and not args.no_floor else None,
    )
    if setup.floor_app is not None:
        setup.floor_venv = run / "floor-venv"
        install_venv(setup.floor_venv, floor_requirements(), logs / "pip.log", "the floor relay")
    if args.litellm:
        setup.litellm_venv = run / "litellm-venv"
        requirement = [f"litellm[proxy]=={LITELLM_VERSION}"]
        install_venv(setup.litellm_venv, requirement, logs / "pip.log", "LiteLLM's proxy")
    prepare_chatwire(setup, logs / "chatwire-cli.log")
    if args.baseline:
        command = install_baseline(PROJECT, args.baseline, run, logs / "pip.log")
        setup.baseline = Setup(run=run, chatwire=command, floor_app=None, label="base")
        prepare_chatwire(setup.baseline, logs / "base-cli.log")
    return setup


def header(args: argparse.Namespace, reference: str) -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"chatwire bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}\n"
        f"one run, {args.rounds} alternating round(s); {args.workers} worker(s) per server; "
        f"req/s and last byte: wrk, {args.connections} connections, {args.deltas}-delta "
        f"replies, {args.seconds:g} s a round; first byte: 1 connection; CPU per delta: "
        f"{args.long_deltas}-delta replies; RSS per stream: slow streams. "
        f"Ratios are to '{reference}'."
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
            bench = Bench(args, procs, setup, upstream, fd_limit, {}, [])
            phases: dict[str, Callable[[], None]] = {
                "fast": lambda: bench.throughput("fast", first_bytes=True),
                "long": lambda: bench.throughput("long", first_bytes=False),
                "slow": bench.slow_streams,
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
    reference = "floor" if "floor" in bench.figures else "upstream"
    print(header(args, reference))
    print()
    print(table(bench.figures, reference))
    print()
    for line in goals(bench.figures, STREAMS_GOAL):
        print(f"- {line}")
    for text in bench.notes:
        print(f"- note: {text}")
    for name, fig in bench.figures.items():
        for failure in fig.failures():
            print(f"- errors: {name}: {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
