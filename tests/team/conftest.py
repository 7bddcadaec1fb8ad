"""Redis for the team tests: the shared one on 127.0.0.1:6379 under a key prefix of the
test's own (removed after it), or a redis-server of the test's own on a port of its own (for
outages: stopped and started again mid-test)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tests.team import policied

SHARED = "redis://127.0.0.1:6379/0"


def _reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture
def redis_url() -> str:
    if not _reachable(SHARED):
        pytest.skip("no Redis on 127.0.0.1:6379")
    return SHARED


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted after it."""
    mine = f"chatwire-test-{secrets.token_hex(6)}:"
    yield mine
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=mine + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def _policies() -> Iterator[None]:
    policied.install()
    yield
    policied.uninstall()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OwnRedis:
    """A redis-server of the test's own, that it may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("no redis-server")
        self._proc = subprocess.Popen(  # noqa: S603, ASYNC220 (a fixed command, at once)
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if await asyncio.to_thread(_reachable, self.url):
                return
            await asyncio.sleep(0.02)
        pytest.fail("redis-server did not start")

    async def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            await asyncio.to_thread(self._proc.wait, 10)
            self._proc = None


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            await server.stop()
