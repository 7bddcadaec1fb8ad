"""Shared fixtures: a fake Mistral and a real chatwire server, both on 127.0.0.1 TCP."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from chatwire.app import create_app
from chatwire.cli import open_store, prepare
from chatwire.core.config import Settings
from chatwire.server import uvicorn_config
from chatwire.store.records import CredentialField
from tests.fakes.endless import Endless
from tests.fakes.fake_mistral import FakeMistral
from tests.templates import copy_migrated_sqlite

FAKE_KEY = "fake-mistral-key-0123456789"

# Every httpx client (the tests' own and those inside the SDKs) builds an SSL context and
# loads certifi's CA bundle into it: 45 ms of CPU each, a quarter of a test server's start,
# for clients that speak plain HTTP to 127.0.0.1. The tests of a process share one context
# per CA file (nothing in the tests loads more certificates into one or speaks TLS).
_create_default_context = ssl.create_default_context


@functools.cache
def _shared_context(cafile: Any) -> ssl.SSLContext:
    return _create_default_context(cafile=cafile)


def _default_context(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: Any = None,
    capath: Any = None,
    cadata: Any = None,
) -> ssl.SSLContext:
    if purpose is ssl.Purpose.SERVER_AUTH and cafile is not None and capath is cadata is None:
        return _shared_context(cafile)
    return _create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)


ssl.create_default_context = _default_context


@dataclass
class Running:
    url: str
    settings: Settings
    token: str
    user_id: int
    client: httpx.AsyncClient
    name: str = "alice"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def chat_body(
        self, content: str = "Hello there", model: str = "mistral-small-latest", **settings: Any
    ) -> dict[str, Any]:
        return {
            "chatSettings": {"model": model, **settings},
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": content},
            ],
        }


@pytest.fixture
async def fake() -> AsyncIterator[FakeMistral]:
    upstream = FakeMistral(api_key=FAKE_KEY)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


ServerFactory = Callable[..., Awaitable[Running]]


class Servers:
    """chatwire servers (uvicorn, real TCP) started under ``folder`` against ``fake``, each
    with a user 'alice' and a token; ``close`` stops them all."""

    def __init__(self, folder: Path, fake: FakeMistral) -> None:
        self.folder = folder
        self.fake = fake
        self._running: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(
        self,
        stored_key: str | None = FAKE_KEY,
        fields: Mapping[str, CredentialField] | None = None,
        **overrides: Any,
    ) -> Running:
        values: dict[str, Any] = {
            "data_dir": self.folder / f"data{len(self._running)}",
            "database_url": None,
            "secret_key": None,
            "mistral_base_url": self.fake.base_url,
            "mistral_api_key": None,
            "cache_ttl": 1.0,
            # Error tests want the upstream's answer at once; tests of retries turn them on.
            "upstream_retries": 0,
            # The fakes listen on loopback, where user-set URLs may go only when allowed;
            # the tests of that rule start their server with upstream_allow="". Many tests
            # check the fakes' own error messages, which user-set upstreams pass on only with
            # upstream_error_detail (tests of the terse default turn it off).
            "upstream_allow": "127.0.0.1",
            "upstream_error_detail": True,
        }
        values.update(overrides)
        settings = Settings(**values)
        if settings.database_url is None:
            # A copy of a migrated database; ``prepare`` finds it at the head.
            copy_migrated_sqlite(settings.data_dir / "chatwire.db")
        await asyncio.to_thread(prepare, settings)
        token, user_id = await create_user(settings, "alice", stored_key)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(settings, fields), **uvicorn_config(settings, port=port))
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=url, timeout=10)
        self._running.append((server, task, client))
        return Running(url=url, settings=settings, token=token, user_id=user_id, client=client)

    async def close(self) -> None:
        for server, task, client in self._running:
            await client.aclose()
            server.should_exit = True
            await asyncio.wait_for(task, 10)


async def create_user(settings: Settings, name: str, stored_key: str | None) -> tuple[str, int]:
    """User ``name`` in the store of ``settings``, with ``stored_key`` (unless None) as her
    Mistral key: her token and id."""
    async with open_store(settings) as store:
        user, token = await store.create_user(name)
        if stored_key is not None:
            await store.update_profile(user.id, {"mistral_api_key": stored_key})
    return token, user.id


async def add_user(server: Running, name: str, stored_key: str | None = FAKE_KEY) -> Running:
    """A new user ``name`` of a running chatwire, with a token and, unless ``stored_key`` is
    None, that key stored as her Mistral key: the server as she calls it."""
    token, user_id = await create_user(server.settings, name, stored_key)
    return replace(server, token=token, user_id=user_id, name=name)


@pytest.fixture
async def make_server(tmp_path: Path, fake: FakeMistral) -> AsyncIterator[ServerFactory]:
    """Start chatwire (uvicorn, real TCP) with settings overrides; a user 'alice' with a token,
    and, unless ``stored_key=None``, the fake's key stored in her profile. ``fields``: the
    app's credential fields, when not the shipped ones."""
    servers = Servers(tmp_path, fake)
    yield servers.start
    await servers.close()


@pytest.fixture
async def endless() -> AsyncIterator[Endless]:
    upstream = Endless()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> Running:
    return await make_server()


@pytest.fixture(autouse=True)
async def _langchain_clients_closed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """LangChain's ChatOpenAI keeps one httpx client per base URL in a cache of 128 it never
    closes: with a server (and a base URL) per test, evicted clients were collected at random
    later, their sockets unclosed, and failed whichever test was running (warnings are
    errors). Each test's clients are made fresh here and closed with the test."""
    from langchain_openai.chat_models import _client_utils, base

    made: list[Any] = []

    def fresh(base_url: str | None, timeout: Any, socket_options: Any = ()) -> Any:
        client = _client_utils._build_async_httpx_client(base_url, timeout, socket_options)
        made.append(client)
        return client

    monkeypatch.setattr(base, "_get_default_async_httpx_client", fresh)
    yield
    for client in made:
        await client.aclose()
