"""chatwire with a routes file, in front of a fake Mistral, a fake Anthropic and a closed
port, all on 127.0.0.1 TCP; the shared Redis under a key prefix of the test's own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from tests.conftest import FAKE_KEY, Running, ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.redis_server import reachable
from tests.test_serve import free_port

SHARED_REDIS = "redis://127.0.0.1:6379/0"
RoutedFactory = Callable[..., Awaitable[Running]]


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as upstream:
        yield upstream


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    return free_port()


@pytest.fixture
def routed(
    make_server: ServerFactory, claude: FakeAnthropic, closed_port: int, tmp_path: Path
) -> RoutedFactory:
    """Start chatwire with ``routes`` (the routes file's TOML) and settings overrides; the
    operator's keys for Mistral, Anthropic and Groq (Groq at the closed port)."""
    count = 0

    async def start(routes: str, **overrides: Any) -> Running:
        nonlocal count
        count += 1
        path = tmp_path / f"routes{count}.toml"
        path.write_text(routes)
        values: dict[str, Any] = {
            "routes_file": path,
            "mistral_api_key": FAKE_KEY,
            "anthropic_base_url": claude.base_url,
            "anthropic_api_key": claude.api_key,
            "groq_base_url": f"http://127.0.0.1:{closed_port}/v1",
            "groq_api_key": "fake-groq-key-0123456789",
        }
        values.update(overrides)
        return await make_server(**values)

    return start


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the shared Redis; its keys are deleted after it."""
    if not reachable(SHARED_REDIS):
        pytest.fail("Redis does not answer on 127.0.0.1:6379")
    mine = f"chatwire-test-{secrets.token_hex(6)}:"
    yield mine
    client = redis.asyncio.Redis.from_url(SHARED_REDIS)
    try:
        keys = [key async for key in client.scan_iter(match=mine + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def group(name: str, *deployments: str, strategy: str = "priority", label: str = "") -> str:
    """A group's TOML; each deployment ``name=provider/model`` (optionally ``:weight``)."""
    lines = [f'[groups."{name}"]', f'strategy = "{strategy}"']
    if label:
        lines.append(f'label = "{label}"')
    for index, spec in enumerate(deployments):
        label, _, rest = spec.partition("=")
        target, _, weight = rest.partition(":")
        provider, _, model = target.partition("/")
        lines += [
            f'[[groups."{name}".deployments]]',
            f'name = "{label}"',
            f'provider = "{provider}"',
            f'model = "{model}"',
            f"priority = {index}",
        ]
        if weight:
            lines.append(f"weight = {weight}")
    return "\n".join(lines) + "\n"
