"""A soak run: many concurrent chats for a while, with faults, then a check for leaks.

``python -m tests.soak [--streams 300] [--duration 180] [--seed 1]`` from the repository's
root runs the long one; ``tests/test_soak.py`` a short one in CI. It is test tooling, not a
command of the product: it needs the test tools (httpx) and the fault-injecting fake Mistral
of the tests.

A real ``chatwire serve`` process and the fake Mistral (``python -m tests.fakes``, a process
of its own, so that the load's clients, in this one, never slow the upstream down) are
started; clients
keep ``streams`` chats going on both chat APIs for ``duration`` seconds, each one a normal
reply, a slow one, a reply cut or stalled mid-stream, an upstream that never answers or
answers 429/500, multi-byte text split across writes, or a client that goes away early.
Every answer is checked against what that case must give. Then, once idle, the server's own
figures (``/metrics``: open chats, asyncio tasks, file descriptors, resident memory) must be
back where they started, up to the upstream connections its pool keeps alive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.fake_mistral import FakeMistral

ROOT = Path(__file__).resolve().parents[1]  # where ``python -m tests.fakes`` runs
KEY = "soak-key-0123456789"
MESSAGES = [{"role": "user", "content": "Tell me about the sea"}]
# model, what a chat with it must give, and how often it is picked.
CASES: list[tuple[str, str, int]] = [
    ("mistral-small-latest", "text", 30),
    ("fake-slow", "text", 15),
    ("fake-split-utf8", "text", 10),
    ("fake-drop", "broken", 10),
    ("fake-stall-mid", "broken", 5),
    ("fake-stall", "504", 5),
    ("fake-500", "500", 5),
    ("fake-429", "429", 5),
    ("fake-slow", "client gone", 15),
]


@dataclass
class Figures:
    open_chats: float
    tasks: float
    fds: float
    rss_mb: float
    upstream_connections: int


@dataclass
class Result:
    chats: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    baseline: Figures | None = None
    peak_rss_mb: float = 0.0
    after: Figures | None = None
    leaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.leaks


async def run_soak(streams: int, duration: float, seed: int = 1, settle: float = 30.0) -> Result:
    result = Result()
    fake = await _Fake.start()
    try:
        with tempfile.TemporaryDirectory() as data:
            server, url, token = await _start_server(Path(data), fake)
            try:
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    await _warm_up(client, token)
                result.baseline = await _figures(url, fake)
                await _load(url, token, fake, streams, duration, seed, result)
                result.after = await _settled(url, fake, result.baseline, settle)
                result.leaks = _leaks(result.baseline, result.after)
            finally:
                server.send_signal(signal.SIGTERM)
                await asyncio.wait_for(server.wait(), 30)
    finally:
        await fake.stop()
    return result


@dataclass
class _Fake:
    """The fake Mistral in a process of its own, and a local copy that tells its replies."""

    process: asyncio.subprocess.Process
    port: int
    base_url: str
    replies: FakeMistral = field(default_factory=lambda: FakeMistral(api_key=KEY))

    @classmethod
    async def start(cls) -> _Fake:
        port = _free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fakes",
            "--port",
            str(port),
            "--api-key",
            KEY,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        return cls(process, port, line.decode().strip())

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), 30)

    def expected_reply(self, model: str) -> str:
        return self.replies.expected_reply(MESSAGES, model=model)

    @property
    def open_connections(self) -> int:
        """Established TCP connections to the fake's port (the kernel's table)."""
        port = f":{self.port:04X}"
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as lines:
                for line in list(lines)[1:]:
                    fields = line.split()
                    count += fields[1].endswith(port) and fields[3] == "01"
        return count


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _start_server(data: Path, fake: _Fake) -> tuple[asyncio.subprocess.Process, str, str]:
    port = _free_port()
    env = {
        **os.environ,
        "CHATWIRE_DATA_DIR": str(data / "data"),
        "CHATWIRE_PORT": str(port),
        "CHATWIRE_MISTRAL_BASE_URL": fake.base_url,
        "MISTRAL_API_KEY": KEY,
        "CHATWIRE_FIRST_BYTE_TIMEOUT": "3",
        "CHATWIRE_IDLE_TIMEOUT": "3",
        "CHATWIRE_UPSTREAM_RETRIES": "1",
        "CHATWIRE_RETRY_BACKOFF": "0.05",
        "CHATWIRE_RETRY_MAX_WAIT": "0.5",
        "CHATWIRE_MAX_STREAMS_PER_USER": "0",
        # Every stream comes from 127.0.0.1: the load is many clients behind one address.
        "CHATWIRE_MAX_CONNECTIONS_PER_CLIENT": "0",
        "CHATWIRE_LOG_LEVEL": "error",
    }
    with (data / "stderr").open("wb") as errors:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatwire",
            "serve",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(200):
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        else:
            server.kill()
            raise RuntimeError("chatwire did not start: " + (data / "stderr").read_text())
    found = re.search(r"cw_[\w-]+", (data / "stderr").read_text())
    if found is None:
        raise RuntimeError("no first-start token in chatwire's output")
    return server, url, found.group(0)


async def _warm_up(client: httpx.AsyncClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(20):
        resp = await client.post(
            "/api/chat/mistral", json=_chat("mistral-small-latest"), headers=auth
        )
        resp.raise_for_status()


async def _figures(url: str, fake: _Fake) -> Figures:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    return Figures(
        open_chats=values["chatwire_open_chats"],
        tasks=values["chatwire_asyncio_tasks"],
        fds=values["process_open_fds"],
        rss_mb=values["process_resident_memory_bytes"] / 2**20,
        upstream_connections=fake.open_connections,
    )


async def _load(
    url: str,
    token: str,
    fake: _Fake,
    streams: int,
    duration: float,
    seed: int,
    result: Result,
) -> None:
    deadline = time.monotonic() + duration
    # Idle connections are dropped by the client before the server's keep-alive timeout
    # (5 s) would close them under a request: the usual rule for keep-alive clients.
    limits = httpx.Limits(
        max_connections=streams, max_keepalive_connections=streams, keepalive_expiry=2
    )
    headers = {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(
        base_url=url, timeout=30, limits=limits, headers=headers
    ) as client:

        async def worker(number: int) -> None:
            chooser = random.Random(seed * 100_003 + number)
            while time.monotonic() < deadline:
                model, expect = chooser.choices(
                    [(m, e) for m, e, _ in CASES], [w for _, _, w in CASES]
                )[0]
                api = chooser.choice(["chatbot-ui", "v1"])
                got = await _one(client, fake, api, model, expect, chooser)
                result.chats += 1
                result.outcomes[f"{expect} ({api})"] += 1
                if got is not None:
                    result.failures.append(f"{api} {model} expecting {expect}: {got}")

        async def watch_memory() -> None:
            while time.monotonic() < deadline:
                await asyncio.sleep(1)
                figures = await _figures(url, fake)
                result.peak_rss_mb = max(result.peak_rss_mb, figures.rss_mb)

        await asyncio.gather(watch_memory(), *(worker(n) for n in range(streams)))


async def _one(
    client: httpx.AsyncClient,
    fake: _Fake,
    api: str,
    model: str,
    expect: str,
    chooser: random.Random,
) -> str | None:
    """None when the chat gave what its case must give; else what it gave instead."""
    path = "/api/chat/mistral" if api == "chatbot-ui" else "/v1/chat/completions"
    body = _chat(model) if api == "chatbot-ui" else _completion(model)
    pieces: list[bytes] = []

    async def read() -> int:
        async with client.stream("POST", path, json=body) as resp:
            async for piece in resp.aiter_raw():
                pieces.append(piece)
            return resp.status_code

    if expect == "client gone":
        task = asyncio.create_task(read())
        await asyncio.sleep(chooser.uniform(0, 0.3))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await task
        return None
    try:
        status = await read()
    except httpx.RemoteProtocolError:
        return None if expect == "broken" and api == "chatbot-ui" else "a cut response"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    raw = b"".join(pieces)
    if expect in ("504", "500", "429"):
        return None if str(status) == expect else f"status {status}"
    if status != 200:
        return f"status {status}: {raw[:200]!r}"
    if expect == "broken":
        ended = b'data: {"error":' in raw and b"[DONE]" not in raw
        return None if api == "v1" and ended else "a clean end after a failure"
    text = raw.decode() if api == "chatbot-ui" else _sse_text(raw)
    wanted = fake.expected_reply(model)
    if api == "chatbot-ui":
        wanted = wanted.lstrip()
    return None if text == wanted else f"text {text[:60]!r} instead of {wanted[:60]!r}"


def _sse_text(raw: bytes) -> str:
    text = []
    for event in raw.split(b"\n\n"):
        data = event.removeprefix(b"data: ")
        if not data or data == b"[DONE]":
            continue
        for choice in json.loads(data).get("choices", []):
            text.append(choice["delta"].get("content") or "")
    return "".join(text)


def _chat(model: str) -> dict[str, Any]:
    return {"chatSettings": {"model": model}, "messages": MESSAGES}


def _completion(model: str) -> dict[str, Any]:
    return {"model": f"mistral/{model}", "messages": MESSAGES, "stream": True}


async def _settled(url: str, fake: _Fake, base: Figures, within: float) -> Figures:
    """The figures once the server is idle again (or after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        now = await _figures(url, fake)
        if not _leaks(base, now) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


def _leaks(base: Figures, now: Figures) -> list[str]:
    found = []
    if now.open_chats:
        found.append(f"{now.open_chats:g} chats still open")
    if now.tasks > base.tasks + 2:
        found.append(f"asyncio tasks {base.tasks:g} -> {now.tasks:g}")
    # Idle keep-alive connections to the upstream are the pool's, not leaks.
    pooled = now.upstream_connections - base.upstream_connections
    if now.fds > base.fds + pooled + 2:
        found.append(f"file descriptors {base.fds:g} -> {now.fds:g} ({pooled} pooled upstream)")
    if now.rss_mb > base.rss_mb * 1.5 + 30:
        found.append(f"resident memory {base.rss_mb:.0f} MB -> {now.rss_mb:.0f} MB")
    return found


def report(result: Result, streams: int, duration: float) -> str:
    base, after = result.baseline, result.after
    lines = [
        f"soak: {streams} concurrent chats for {duration:g} s: {result.chats} chats, "
        f"{len(result.failures)} wrong, {'no leaks' if not result.leaks else 'LEAKS'}",
        "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())),
    ]
    if base and after:
        lines += [
            f"  open chats: {base.open_chats:g} -> {after.open_chats:g}",
            f"  asyncio tasks: {base.tasks:g} -> {after.tasks:g}",
            f"  file descriptors: {base.fds:g} -> {after.fds:g} "
            f"(idle upstream connections {base.upstream_connections} -> "
            f"{after.upstream_connections})",
            f"  resident memory: {base.rss_mb:.1f} MB -> peak {result.peak_rss_mb:.1f} MB -> "
            f"{after.rss_mb:.1f} MB",
        ]
    lines += [f"  WRONG: {failure}" for failure in result.failures[:20]]
    lines += [f"  LEAK: {leak}" for leak in result.leaks]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="Many concurrent chats with faults against a real server, then a check "
        "for leaks.",
    )
    parser.add_argument("--streams", type=int, default=300, help="chats at once (300)")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds (180)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = asyncio.run(run_soak(args.streams, args.duration, args.seed))
    print(report(result, args.streams, args.duration))
    if not result.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
