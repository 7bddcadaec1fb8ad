"""Redis for the team tests: the shared one on 127.0.0.1:6379 under a key prefix of the
test's own (removed after it), or a redis-server of the test's own on a port of its own (for
outages: stopped and started again mid-test)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tests.redis_server import OwnRedis, reachable
from tests.team import policied

SHARED = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> str:
    if not reachable(SHARED):
        pytest.fail(
            "Redis does not answer on 127.0.0.1:6379: start it (redis-server --daemonize yes "
            "--bind 127.0.0.1 --port 6379 --save '' --appendonly no; .ci/run does)"
        )
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


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            await server.stop()
