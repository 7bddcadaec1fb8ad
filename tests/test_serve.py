"""``chatwire serve`` end to end: the real command in a subprocess, on a free port, talking to
the fake Mistral of the test over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.api.test_metrics import metric
from tests.conftest import FAKE_KEY
from tests.fakes.fake_mistral import FakeMistral
from tests.test_cli import TOKEN, Cli, in_process_of, make_cli, mode

READY_WITHIN = 20.0
STOP_WITHIN = 5.0
BANNER = "No users yet: created user 'local'"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def chat_body(content: str) -> dict[str, Any]:
    return {
        "chatSettings": {"model": "mistral-small-latest", "temperature": 0.5},
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": content},
        ],
    }


@dataclass(frozen=True, slots=True)
class Served:
    """A running ``chatwire`` process; its output goes to files, so nothing can block on it."""

    proc: subprocess.Popen[bytes]
    url: str
    output: Path  # output.stdout and output.stderr

    def stdout(self) -> str:
        return self.output.with_suffix(".stdout").read_text(errors="replace")

    def stderr(self) -> str:
        return self.output.with_suffix(".stderr").read_text(errors="replace")

    async def wait_ready(self, within: float = READY_WITHIN) -> None:
        """Poll /healthz until it answers 200; fail with the process's stderr otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if self.proc.poll() is not None:
                    pytest.fail(
                        f"chatwire exited with {self.proc.returncode} before it was ready:\n"
                        + self.stderr()
                    )
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                if loop.time() > deadline:
                    pytest.fail(
                        f"chatwire did not answer /healthz within {within} s:\n{self.stderr()}"
                    )
                await asyncio.sleep(0.05)

    async def stop(self, signum: int = signal.SIGTERM, within: float = STOP_WITHIN) -> int:
        """Send ``signum`` and wait for the exit; fail if it takes longer than ``within`` s."""
        self.proc.send_signal(signum)
        try:
            return await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"chatwire still running {within} s after signal {signum}:\n{self.stderr()}"
            )

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
            trust_env=False,
        )


class Launch(Protocol):
    def __call__(
        self,
        cli: Cli,
        *args: str,
        port: int,
        env: Mapping[str, str] | None = None,
        umask: int = -1,
    ) -> Served: ...


@contextlib.contextmanager
def launcher(tmp_path: Path) -> Iterator[Launch]:
    """Start ``chatwire ARGS...`` with a Cli's environment plus ``env``; every process is
    killed at the end.

    Each runs in a session of its own, so the teardown kills its workers too.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(
        cli: Cli,
        *args: str,
        port: int,
        env: Mapping[str, str] | None = None,
        umask: int = -1,
    ) -> Served:
        output = tmp_path / f"chatwire-{len(started)}"
        with (
            output.with_suffix(".stdout").open("wb") as stdout,
            output.with_suffix(".stderr").open("wb") as stderr,
        ):
            proc = subprocess.Popen(  # noqa: S603 (our own command, fixed arguments)
                [*cli.command(), *args],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env={**cli.env, **(env or {})},
                cwd=cli.cwd,
                umask=umask,
                start_new_session=True,
            )
        started.append(proc)
        return Served(proc, f"http://127.0.0.1:{port}", output)

    try:
        yield start
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    with launcher(tmp_path) as start:
        yield start


def assert_stopped(code: int, served: Served) -> None:
    """Stopped by SIGTERM after a graceful shutdown (uvicorn then re-raises the signal, so
    -SIGTERM is a clean exit too)."""
    assert code in (0, -signal.SIGTERM), served.stderr()
    assert "Traceback" not in served.stderr(), served.stderr()
    assert "Shutting down" in served.stderr(), served.stderr()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)


def banner_token(served: Served) -> str:
    """The token of the first-start banner, on stderr: the only token anywhere in the output."""
    assert BANNER in served.stderr(), served.stderr()
    tokens: list[str] = TOKEN.findall(served.stderr())
    assert len(tokens) == 1, served.stderr()
    assert not TOKEN.search(served.stdout()), served.stdout()
    return tokens[0]


async def stream_chat(client: httpx.AsyncClient, body: dict[str, Any]) -> list[bytes]:
    async with client.stream("POST", "/api/chat/mistral", json=body) as resp:
        if resp.status_code != 200:
            pytest.fail(f"chat answered {resp.status_code}: {(await resp.aread()).decode()}")
        assert resp.headers["content-type"] == "text/plain; charset=utf-8"
        return [chunk async for chunk in resp.aiter_raw()]


async def test_serve_first_start_then_chat_then_restart(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    """What README's Quickstart and Using it promise, in the order a user meets it."""
    assert fake.base_url is not None
    port = free_port()
    env = {"CHATWIRE_PORT": str(port), "CHATWIRE_MISTRAL_BASE_URL": fake.base_url}
    # umask 0: the private modes must not come from the caller's umask.
    served = launch(cli, "serve", port=port, env=env, umask=0)
    await served.wait_ready()
    token = banner_token(served)

    # The key goes in through stdin while the server runs; it is read fresh, as the server
    # has not looked at this profile yet. (The command runs in this process: it is the
    # server that is a process here.)
    await in_process_of(cli).ok("keys", "set", "local", "mistral", stdin=FAKE_KEY + "\n")
    body = chat_body("Say hello from a subprocess")
    async with served.client(token) as client:
        chunks = await stream_chat(client, body)
        profile = await client.get("/api/profile")
        stranger = await client.get("/api/profile", headers={"Authorization": "Bearer cw_x"})
        metrics = await client.get("/metrics")
    assert b"".join(chunks).decode() == fake.expected_reply(body["messages"])
    assert fake.requests[-1].headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert profile.status_code == 200, profile.text
    assert profile.json()["username"] == "local"
    assert profile.json()["mistral_api_key"] == f"{FAKE_KEY[:3]}...{FAKE_KEY[-4:]}"
    assert stranger.status_code == 401, stranger.text
    # The first-start link signs a browser in, once.
    (link,) = re.findall(r"http://\S+/#signin=([\w-]+)", served.stderr())
    async with httpx.AsyncClient(base_url=served.url, trust_env=False) as browser:
        signed = await browser.post("/api/session", json={"link": link})
        reused = await browser.post("/api/session", json={"link": link})
    assert signed.status_code == 201, signed.text
    assert signed.json()["user"] == "local"
    assert reused.status_code == 401, reused.text
    # What startup built is frozen out of the collector's reach (README, Speed).
    assert metric(metrics.text, "chatwire_gc_frozen_objects") > 1000, metrics.text
    assert FAKE_KEY not in served.stderr() + served.stdout()
    assert mode(cli.data_dir) == 0o700
    for path in cli.data_dir.iterdir():  # database, -wal, -shm and secret.key
        assert mode(path) == 0o600, path
    assert_stopped(await served.stop(), served)

    # Second start, same data directory: no new user, no token printed, the old one works.
    again = launch(cli, "serve", port=port, env=env)
    await again.wait_ready()
    assert BANNER not in again.stderr()
    assert not TOKEN.search(again.stderr() + again.stdout()), again.stderr()
    async with again.client(token) as client:
        profile = await client.get("/api/profile")
    assert profile.status_code == 200, profile.text
    assert profile.json()["username"] == "local"
    assert_stopped(await again.stop(), again)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie nobody reaped is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return True


async def wait_for_workers(served: Served, count: int) -> set[int]:
    """The worker pids, once ``count`` workers have finished starting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WITHIN
    while served.stderr().count("Application startup complete") < count:
        if loop.time() > deadline:
            pytest.fail(f"fewer than {count} workers started:\n{served.stderr()}")
        await asyncio.sleep(0.05)
    return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", served.stderr())}


async def test_serve_with_two_workers_answers_chats(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    assert fake.base_url is not None
    port = free_port()
    served = launch(
        cli,
        "serve",
        "--workers",
        "2",
        "--port",
        str(port),
        port=port,
        env={"CHATWIRE_MISTRAL_BASE_URL": fake.base_url},
    )
    await served.wait_ready()
    token = banner_token(served)
    # /healthz may have been answered by the first worker alone: wait for the second.
    _, workers = await asyncio.gather(
        in_process_of(cli).ok("keys", "set", "local", "mistral", stdin=FAKE_KEY + "\n"),
        wait_for_workers(served, 2),
    )
    assert len(workers) == 2, served.stderr()
    assert served.proc.pid not in workers

    bodies = [chat_body(f"Request number {n}") for n in range(6)]
    async with served.client(token) as client:
        replies = await asyncio.gather(*(stream_chat(client, body) for body in bodies))
    for body, chunks in zip(bodies, replies, strict=True):
        assert b"".join(chunks).decode() == fake.expected_reply(body["messages"])

    assert_stopped(await served.stop(), served)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_WITHIN
    while any(alive(pid) for pid in workers):
        if loop.time() > deadline:
            pytest.fail(f"workers outlived the server:\n{served.stderr()}")
        await asyncio.sleep(0.05)


async def test_workers_get_the_settings_the_command_was_given(
    tmp_path: Path, launch: Launch, fake: FakeMistral
) -> None:
    """Each worker is a fresh interpreter that imports the app by name: the settings the
    command resolved, here from ``--env-file`` (which no worker reads), must reach it."""
    assert fake.base_url is not None
    port = free_port()
    data_dir = tmp_path / "from-the-env-file"
    env_file = tmp_path / "chatwire.env"
    env_file.write_text(
        f"CHATWIRE_DATA_DIR={data_dir}\nCHATWIRE_MISTRAL_BASE_URL={fake.base_url}\n"
        f"CHATWIRE_PORT={port}\n"
    )
    given = make_cli(tmp_path)
    env = {name: value for name, value in given.env.items() if name != "CHATWIRE_DATA_DIR"}
    cli = Cli(data_dir=data_dir, cwd=tmp_path, env=env)
    served = launch(cli, "--env-file", str(env_file), "serve", "--workers", "2", port=port)
    await served.wait_ready()
    token = banner_token(served)
    _, workers = await asyncio.gather(
        in_process_of(cli).ok(
            "--env-file", str(env_file), "keys", "set", "local", "mistral", stdin=FAKE_KEY + "\n"
        ),
        wait_for_workers(served, 2),
    )
    assert len(workers) == 2, served.stderr()

    # A connection each, so that both workers answer: every one must use the file's database
    # (the banner's token is known there) and the file's Mistral.
    bodies = [chat_body(f"Request number {n}") for n in range(8)]

    async def chat_alone(body: dict[str, Any]) -> list[bytes]:
        async with served.client(token) as client:
            return await stream_chat(client, body)

    replies = await asyncio.gather(*(chat_alone(body) for body in bodies))
    for body, chunks in zip(bodies, replies, strict=True):
        assert b"".join(chunks).decode() == fake.expected_reply(body["messages"])
    async with served.client(token) as client:
        metrics = await client.get("/metrics")
    assert metric(metrics.text, "chatwire_gc_frozen_objects") > 1000, metrics.text
    assert not (tmp_path / ".chatwire").exists()  # the default data directory: never made
    assert_stopped(await served.stop(), served)
