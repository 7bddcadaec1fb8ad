"""The load: wrk for throughput, one connection for first-byte latency, many slow streams.

wrk (C) drives 32 keep-alive connections and reports requests/s and the latency to the
last byte. The first byte is timed by an aiohttp client on one connection. The slow
streams are plain sockets (one HTTP/1.1 request each, ``Connection: close``), light enough
that one process holds ten thousand of them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from chatbench.procs import cpu_seconds, rss_bytes, tree
from chatbench.targets import Target

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class WrkRound:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_s: float
    failures: str  # non-2xx answers and socket errors, as wrk reports them


def wrk_script(target: Target, path: Path) -> Path:
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items()]
    lines.append(f"wrk.body = [==[{target.body.decode()}]==]")
    path.write_text("\n".join(lines) + "\n")
    return path


def _ms(text: str, label: str) -> float:
    found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def run_wrk(target: Target, script: Path, connections: int, seconds: float) -> WrkRound:
    pids = tree(target.pid)
    before = cpu_seconds(pids)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency"]
    argv += ["-s", str(script)]
    out = subprocess.run([*argv, target.url], capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pids) - before
    done = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    failures = [
        m.group(0) for m in re.finditer(r"(Non-2xx or 3xx responses|Socket errors):.*", out)
    ]
    return WrkRound(
        requests=int(done.group(1)) if done else 0,
        rps=float(rps.group(1)) if rps else 0.0,
        p50_ms=_ms(out, "50%"),
        p99_ms=_ms(out, "99%"),
        cpu_s=used,
        failures="; ".join(failures),
    )


class ReplyBroken(Exception):
    pass


async def _one(session: aiohttp.ClientSession, target: Target) -> float:
    started = time.perf_counter()
    async with session.post(target.url, data=target.body, headers=target.headers) as resp:
        first = await resp.content.readany()
        took = time.perf_counter() - started
        rest = await resp.content.read()
        if resp.status != 200 or target.done not in first + rest:
            raise ReplyBroken(f"{target.name} answered {resp.status}: {(first + rest)[:300]!r}")
    return took


async def first_bytes(target: Target, count: int) -> list[float]:
    """Seconds to the first byte of the reply's body, one request at a time."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _one(session, target)  # opens the connection: not timed
        return [await _one(session, target) for _ in range(count)]


async def check(target: Target) -> None:
    """One request, read whole: a target that does not answer properly is not measured."""
    async with aiohttp.ClientSession() as session:
        await _one(session, target)


@dataclass(frozen=True)
class StreamsResult:
    streams: int
    completed: int
    failed: int
    most_open: int  # streams open at once, at the peak
    base_rss: int
    peak_rss: int
    first_failure: str


class _Streams:
    """Counts shared by the streams of one run."""

    def __init__(self) -> None:
        self.open = self.most_open = self.completed = self.failed = 0
        self.first_failure = ""

    def fail(self, why: str) -> None:
        self.failed += 1
        self.first_failure = self.first_failure or why


async def _stream(target: Target, request: bytes, gate: asyncio.Semaphore, s: _Streams) -> None:
    url = urlsplit(target.url)
    assert url.hostname is not None
    assert url.port is not None
    opened = False
    try:
        async with gate:  # bounded connects, so the server's accept queue never overflows
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
            writer.write(request)
        parts = [await reader.read(65536)]
        s.open += 1
        opened = True
        s.most_open = max(s.most_open, s.open)
        while part := await reader.read(65536):
            parts.append(part)
        writer.close()
        reply = b"".join(parts)
        head, _, body = reply.partition(b"\r\n\r\n")
        chunked = b"transfer-encoding: chunked" in head.lower()
        if not head.startswith(b"HTTP/1.1 200"):
            s.fail(f"{target.name}: {reply[:200]!r}")
        elif target.done not in body or (chunked and not body.endswith(b"0\r\n\r\n")):
            s.fail(f"{target.name}: the reply ended early: ...{reply[-200:]!r}")
        else:
            s.completed += 1
    except Exception as exc:  # every way a stream can break is counted, none stops the run
        s.fail(f"{target.name}: {exc!r}")
    finally:
        if opened:
            s.open -= 1


async def hold_streams(
    target: Target, count: int, within: float, progress: Callable[[str], None]
) -> StreamsResult:
    """Open ``count`` streams to a slow upstream and read each to its end, sampling the
    server's resident memory all along."""
    url = urlsplit(target.url)
    headers = "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
    request = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n{headers}"
        f"Content-Type: application/json\r\nContent-Length: {len(target.body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + target.body
    pids = tree(target.pid)
    base = rss_bytes(pids)
    s = _Streams()
    gate = asyncio.Semaphore(200)
    pending = {asyncio.create_task(_stream(target, request, gate, s)) for _ in range(count)}
    peak = base
    deadline = time.monotonic() + within
    next_note = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        peak = max(peak, rss_bytes(pids))
        if time.monotonic() > next_note:
            progress(f"{s.open} open, {s.completed} done, {s.failed} failed")
            next_note += 5
        _, pending = await asyncio.wait(pending, timeout=0.25)
    if pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
        s.fail(f"{target.name}: streams still open after {within:g} s")
    return StreamsResult(
        streams=count,
        completed=s.completed,
        failed=count - s.completed,
        most_open=s.most_open,
        base_rss=base,
        peak_rss=peak,
        first_failure=s.first_failure,
    )
