"""What a stream holds of the server's memory, measured on a real ``chatwire serve`` process
(its resident memory, from /proc): a client that never reads its reply costs a bounded, small
amount while it stays (chatwire stops reading the upstream while the client's socket is full),
and the memory is given back when such clients leave."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatwire.memory import FREE_THRESHOLD
from tests.conftest import FAKE_KEY
from tests.fakes.endless import Endless
from tests.fakes.fake_mistral import FakeMistral
from tests.test_cli import Cli, in_process_of, make_cli
from tests.test_serve import Launch, Served, banner_token, free_port, launcher

CLIENTS = 300
# What one client that does not read may hold (the README's reliability section says the
# same): the upstream bytes read ahead, one upstream read in hand, and its encoding queued
# behind the client's full socket.
PER_STREAM_BOUND = 600 * 1024


def _status(pid: int, field: str) -> int:
    """A memory figure of the process's /proc status, in bytes (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def resident(pid: int) -> int:
    return _status(pid, "VmRSS")


def peak(pid: int) -> int:
    """The highest resident memory since ``peak_reset``."""
    return _status(pid, "VmHWM")


def peak_reset(pid: int) -> None:
    """Start the process's peak resident memory (VmHWM) afresh from what it holds now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def settled(pid: int, rounds: int = 6, every: float = 0.5) -> int:
    """The resident memory once it stops moving by more than 2 MiB between samples."""
    last = resident(pid)
    for _ in range(rounds):
        await asyncio.sleep(every)
        now = resident(pid)
        if abs(now - last) < 2 * 2**20:
            return now
        last = now
    return last


async def non_reader(port: int, token: str) -> socket.socket:
    """A client that asks for a chat and then never reads: its receive buffer kept small, so
    what piles up is the server's to hold."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    body = json.dumps(
        {
            "chatSettings": {"model": "mistral-small-latest"},
            "messages": [{"role": "user", "content": "Tell me everything."}],
        }
    ).encode()
    head = (
        f"POST /api/chat/mistral HTTP/1.1\r\nHost: chatwire\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    await loop.sock_sendall(sock, head + body)
    return sock


async def serve(cli: Cli, launch: Launch, upstream: str, **env: str) -> tuple[Served, int, str]:
    """``chatwire serve`` with Mistral at ``upstream`` and the first user's key stored, no
    cap on chats but what ``env`` sets: (the process, its port, the user's token)."""
    port = free_port()
    served = launch(
        cli,
        "serve",
        port=port,
        env={
            "CHATWIRE_PORT": str(port),
            "CHATWIRE_MISTRAL_BASE_URL": upstream,
            "CHATWIRE_MAX_STREAMS_PER_USER": "0",
            "CHATWIRE_MAX_STREAMS": "0",
            "CHATWIRE_MAX_CONNECTIONS_PER_CLIENT": "0",
            **env,
        },
    )
    await served.wait_ready()
    token = banner_token(served)
    await in_process_of(cli).ok("keys", "set", "local", "mistral", stdin=FAKE_KEY + "\n")
    return served, port, token


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    with launcher(tmp_path) as start:
        yield start


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_clients_that_do_not_read_hold_little_and_give_it_back(
    cli: Cli, launch: Launch, endless: Endless
) -> None:
    served, port, token = await serve(cli, launch, endless.base_url)
    pid = served.proc.pid
    # Ten first, closed again: what every stream needs anyway (buffers, the upstream connection
    # pool, the code paths warmed) is not charged to the non-readers.
    warm = [await non_reader(port, token) for _ in range(10)]
    await settled(pid)
    for sock in warm:
        sock.close()
    base = await settled(pid)

    socks: list[socket.socket] = []
    try:
        for _ in range(CLIENTS):
            socks.append(await non_reader(port, token))
        # Each begun stream is relayed at full speed until its client's socket fills, so the
        # last ones begin after the first have moved megabytes: 7 s on a quiet 2-core machine,
        # more with the rest of the suite beside it. The bound here is on memory, not speed.
        await endless.begun(len(warm) + CLIENTS, within=60)
        # Every stream stalls on its client: the upstream is no longer read (what it sent
        # until then fills the sockets' kernel buffers, not chatwire's memory).
        async with asyncio.timeout(30):
            while True:
                before = endless.sent
                await asyncio.sleep(0.5)
                if endless.sent - before < 2**20:
                    break
        held = await settled(pid)
        # Each is a chat being relayed, not a refusal.
        for sock in socks:
            assert (await asyncio.get_running_loop().sock_recv(sock, 12)) == b"HTTP/1.1 200"
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
    per_stream = (held - base) / CLIENTS
    assert per_stream < PER_STREAM_BOUND, (
        f"{per_stream / 1024:.0f} KiB per client that does not read ({base / 2**20:.0f} MiB "
        f"-> {held / 2**20:.0f} MiB for {CLIENTS})"
    )

    # Given back within a few of the trimmer's rounds (chatwire.memory).
    bound = max(FREE_THRESHOLD + 8 * 2**20, (held - base) / 4)
    for _ in range(30):
        await asyncio.sleep(0.5)
        left = resident(pid)
        if left - base < bound:
            break
    print(f"{base / 2**20:.0f} -> {held / 2**20:.0f} -> {left / 2**20:.0f} MiB")
    assert left - base < bound, (
        f"after they left: {base / 2**20:.0f} MiB -> {held / 2**20:.0f} MiB -> "
        f"{left / 2**20:.0f} MiB"
    )
    served.proc.terminate()
    served.proc.wait(10)


BUDGET = 128 * 2**20
BODIES = 12
BODY = 2 * 2**20
# What the process may hold past the bodies' budget while they are parsed and sent upstream:
# the reading of one body at a time, and the allocator's slack.
OVERHEAD = 48 * 2**20


def small_messages_body(size: int) -> bytes:
    """A /v1 body of about ``size`` bytes, all of it tiny messages: the most objects per
    byte a chat body makes once parsed."""
    message = b'{"role":"user","content":"hi"},'
    count = (size - 200) // len(message)
    return (
        b'{"model":"mistral/fake-stall","stream":true,"messages":['
        + message * count
        + b'{"role":"user","content":"hi"}]}'
    )


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_concurrent_maximal_bodies_stay_within_the_budget(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    assert fake.base_url is not None
    served, _, token = await serve(cli, launch, fake.base_url, CHATWIRE_BODY_MEMORY=str(BUDGET))
    pid = served.proc.pid
    body = small_messages_body(BODY)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=served.url, timeout=60, trust_env=False) as client:
        # Once through, so what any such request needs anyway is not counted.
        small = small_messages_body(64 * 1024).replace(b"fake-stall", b"mistral-small-latest")
        assert (
            await client.post("/v1/chat/completions", content=small, headers=headers)
        ).is_success
        base = await settled(pid)
        peak_reset(pid)

        async def chat() -> int:
            try:
                resp = await client.post("/v1/chat/completions", content=body, headers=headers)
            except httpx.ReadTimeout:
                return 0
            except httpx.TransportError:
                # Refused mid-upload: the 503 went out and the connection closed before the
                # client had sent all of its body (httpx then reports the broken upload).
                return -503
            return resp.status_code

        tasks = [asyncio.create_task(chat()) for _ in range(BODIES)]
        refused = 0
        async with asyncio.timeout(60):
            while True:
                done = [t for t in tasks if t.done()]
                refused = sum(1 for t in done if abs(t.result()) == 503)
                assert all(abs(t.result()) == 503 for t in done), [t.result() for t in done]
                if refused + fake.active_requests == BODIES:
                    break
                await asyncio.sleep(0.1)
        highest = peak(pid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    admitted = BODIES - refused
    print(
        f"{admitted} admitted, {refused} refused; {base / 2**20:.0f} MiB -> peak {highest / 2**20:.0f} MiB"
    )
    assert admitted >= 1
    assert highest - base < BUDGET + OVERHEAD, (
        f"{admitted} bodies of {BODY // 2**20} MiB admitted under a {BUDGET // 2**20} MiB budget: "
        f"{base / 2**20:.0f} MiB -> peak {highest / 2**20:.0f} MiB"
    )
