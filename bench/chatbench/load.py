"""The load: wrk for throughput, one connection for first-byte latency, many slow streams.

wrk (C) drives 32 keep-alive connections and reports requests/s and the latency to the
last byte; for many users, a Lua script gives each request the next of their tokens. The
first and the last byte of one request at a time are timed by a blocking socket on one
keep-alive connection (no HTTP library between the clock and the bytes). The slow streams
are plain sockets (one HTTP/1.1 request each, ``Connection: close``), light enough that one
process holds ten thousand of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
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


# Each request the next token of the file, round and round; with a limit, the script says
# so on stderr once that many replies came back (one pass over the tokens, each used once),
# and run_wrk interrupts wrk there: wrk then reports the time it really ran (its threads
# stopping alone would not end the run before its duration).
LAP_DONE = "bench: every token used once"
_ROTATING = """
local tokens = {{}}
for line in io.lines("{tokens}") do tokens[#tokens + 1] = line end
local count, next_one, answered, limit = #tokens, 0, 0, {limit}
request = function()
  next_one = next_one % count + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[next_one]
  return wrk.format()
end
"""
_STOP_AFTER = f"""
response = function(status, headers, body)
  answered = answered + 1
  if answered == limit then
    io.stderr:write("{LAP_DONE}\\n")
    wrk.thread:stop()
  end
end
"""


def rotating_script(target: Target, tokens: Path, path: Path, stop_after: int = 0) -> Path:
    """A wrk script that sends ``target``'s request with each token of ``tokens`` in turn
    (and, with ``stop_after``, stops after that many replies)."""
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines.append(f"wrk.body = [==[{target.body.decode()}]==]")
    script = "\n".join(lines) + _ROTATING.format(tokens=tokens, limit=stop_after)
    path.write_text(script + (_STOP_AFTER if stop_after else ""))
    return path


def _ms(text: str, label: str) -> float:
    found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def run_wrk(target: Target, script: Path, connections: int, seconds: float) -> WrkRound:
    """One wrk run (``seconds`` long, or until the script stops it)."""
    pids = tree(target.pid)
    before = cpu_seconds(pids)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency"]
    argv += ["-s", str(script)]
    wrk = subprocess.Popen(
        [*argv, target.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert wrk.stderr is not None
    for line in wrk.stderr:
        if line.strip() == LAP_DONE:
            wrk.send_signal(signal.SIGINT)
            break
    out, err = wrk.communicate()
    used = cpu_seconds(pids) - before
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed ({wrk.returncode}) on {target.name}: {err.strip()}")
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
    headers = {"Content-Type": "application/json", **target.headers}
    async with session.post(target.url, data=target.body, headers=headers) as resp:
        first = await resp.content.readany()
        took = time.perf_counter() - started
        rest = await resp.content.read()
        if resp.status != 200 or target.done not in first + rest:
            raise ReplyBroken(f"{target.name} answered {resp.status}: {(first + rest)[:300]!r}")
    return took


def _request_bytes(target: Target, keep_alive: bool) -> bytes:
    url = urlsplit(target.url)
    headers = "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
    return (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n{headers}"
        f"Content-Type: application/json\r\nContent-Length: {len(target.body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode() + target.body


def _timed(sock: socket.socket, request: bytes, target: Target) -> tuple[float, float]:
    """One request on a keep-alive connection: seconds to the first bytes of the reply's
    body, and to its last byte (the end of a chunked body, or Content-Length reached)."""
    clock = time.perf_counter
    started = clock()
    sock.sendall(request)
    data = b""
    while (split := data.find(b"\r\n\r\n")) < 0:
        part = sock.recv(65536)
        if not part:
            raise ReplyBroken(f"{target.name} closed the connection: {data[:300]!r}")
        data += part
    head, body = data[:split].lower(), data[split + 4 :]
    while not body:
        part = sock.recv(65536)
        if not part:
            raise ReplyBroken(f"{target.name} ended its reply without a body: {head!r}")
        body = part
    first = clock()
    length = re.search(rb"\r\ncontent-length: *(\d+)", head)
    parts = [body]
    if length is not None:
        left = int(length.group(1)) - len(body)
        while left > 0:
            part = sock.recv(65536)
            if not part:
                break
            parts.append(part)
            left -= len(part)
    else:
        # Chunked: until the last chunk (a chunk's data never ends in "\r\n0\r\n\r\n"
        # on its own: the chunk's closing CRLF comes after it).
        tail = body[-16:]
        while not (tail.endswith(b"\r\n0\r\n\r\n") or tail == b"0\r\n\r\n"):
            part = sock.recv(65536)
            if not part:
                break
            parts.append(part)
            tail = (tail + part)[-16:]
    last = clock()
    whole = b"".join(parts)
    if not head.startswith(b"http/1.1 200") or target.done not in whole:
        raise ReplyBroken(f"{target.name} answered {head[:40]!r}: {whole[:300]!r}")
    return first - started, last - started


def _opened(target: Target) -> tuple[socket.socket, bytes]:
    """A keep-alive connection to ``target``, opened by one request not timed, and the
    request to time on it."""
    url = urlsplit(target.url)
    assert url.hostname is not None
    assert url.port is not None
    request = _request_bytes(target, keep_alive=True)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _timed(sock, request, target)
    except BaseException:
        sock.close()
        raise
    return sock, request


def sequential(target: Target, count: int) -> tuple[list[float], list[float]]:
    """``count`` requests one after another on one connection (after one not timed, which
    opens it): seconds to each reply's first body bytes, and to its last byte."""
    firsts, lasts = [], []
    sock, request = _opened(target)
    with sock:
        for _ in range(count):
            first, last = _timed(sock, request, target)
            firsts.append(first)
            lasts.append(last)
    return firsts, lasts


def alternating(targets: list[Target], count: int) -> list[list[float]]:
    """``count`` requests to each target, taking turns request by request, each target on a
    connection of its own (opened by one request not timed): the seconds to each reply's
    first body bytes, a list per target. Turn by turn, whatever the machine does at a moment
    falls on every target alike, which a run of one target after another cannot give."""
    firsts: list[list[float]] = [[] for _ in targets]
    with contextlib.ExitStack() as stack:
        socks = []
        for target in targets:
            sock, request = _opened(target)
            socks.append((stack.enter_context(sock), request, target))
        for _ in range(count):
            for i, (sock, request, target) in enumerate(socks):
                firsts[i].append(_timed(sock, request, target)[0])
    return firsts


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
    request = _request_bytes(target, keep_alive=False)
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
