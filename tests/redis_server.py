"""A redis-server of a test's own, on a port of its own, that the test may stop and start
again (the shared one on 6379 is never stopped)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from tests.test_serve import free_port


def reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


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
            pytest.fail("needs redis-server (apt-get install redis-server)")
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
            if await asyncio.to_thread(reachable, self.url):
                return
            await asyncio.sleep(0.02)
        pytest.fail("redis-server did not start")

    def pause(self) -> None:
        """Stop the server answering, its connections left open (SIGSTOP): a stalled Redis."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
            self._proc.kill()
            await asyncio.to_thread(self._proc.wait, 10)
            self._proc = None
