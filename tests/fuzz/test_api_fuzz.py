"""The HTTP API fuzzed from its own OpenAPI description with schemathesis, over TCP: every
operation, valid and invalid inputs, must answer without a server error (5xx) and without
hanging. Bounded and derandomized, so the CI run is short and repeatable.

Every provider's base URL points at one fake Mistral and every key is set, so generated chats
reach an upstream that answers (a 404 or a 400 for names it does not know), never one that
is down (a legitimate 502, which would hide a real server error)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from chatwire.app import create_api, create_app
from chatwire.cli import open_store, prepare
from chatwire.core.config import Settings
from chatwire.server import uvicorn_config
from tests.fakes.fake_mistral import FakeMistral

KEY = "fuzz-key-0123456789"
schema = schemathesis.openapi.from_dict(
    create_api(Settings(data_dir=Path("/nonexistent"))).openapi()
)


@dataclass(frozen=True)
class Served:
    url: str
    token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """chatwire and a fake Mistral on their own event loop in a thread: schemathesis calls
    are synchronous."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeMistral(api_key=KEY)
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    base = fake.base_url
    assert base is not None
    root = base.removesuffix("/v1")
    bases: dict[str, Any] = {
        f"{name}_base_url": base
        for name in ("mistral", "openai", "anthropic", "google", "groq", "perplexity")
    }
    keys: dict[str, Any] = {
        field: KEY
        for field in (
            "mistral_api_key",
            "openai_api_key",
            "anthropic_api_key",
            "google_gemini_api_key",
            "groq_api_key",
            "perplexity_api_key",
            "openrouter_api_key",
            "azure_openai_api_key",
        )
    }
    config = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        openrouter_base_url=base,
        ollama_base_url=root,
        azure_openai_endpoint=root,
        cache_ttl=1.0,
        upstream_retries=0,
        **bases,
        **keys,
    )
    prepare(config)

    async def start() -> tuple[uvicorn.Server, str, asyncio.Task[None]]:
        async with open_store(config) as store:
            _, token = await store.create_user("fuzz")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(config), **uvicorn_config(config, port=port))
        )
        serving = loop.create_task(server.serve(sockets=[sock]))
        for _ in range(1000):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        assert server.started
        return server, token, serving

    server, token, serving = asyncio.run_coroutine_threadsafe(start(), loop).result(20)
    try:
        yield Served(f"http://127.0.0.1:{server.config.port}", token)
    finally:

        async def stop() -> None:
            server.should_exit = True
            await asyncio.wait_for(serving, 10)
            await fake.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        # Closed here, or its self-pipe sockets are collected later, unclosed, in whichever
        # test runs then (warnings are errors).
        loop.close()


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error_and_no_hang(case: schemathesis.Case[Any], served: Served) -> None:
    response = case.call(
        base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}, timeout=15
    )
    case.validate_response(response, checks=[not_a_server_error])
