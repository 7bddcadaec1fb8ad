"""A database that fails: every route answers a JSON 503 with Retry-After in its own shape,
within CHATWIRE_DB_TIMEOUT, and token lookups waiting on it are capped; /readyz says so while
/healthz stays 200. PostgreSQL is made to fail through a proxy of the test's own
(``tests.dbproxy``), never the shared server; SQLite by another writer holding its lock."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from typing import Any

import httpx
import openai
import pytest

from chatwire.store.health import head_revision
from tests.conftest import Running, ServerFactory
from tests.dbproxy import DatabaseProxy

CHAT = "/api/chat/mistral"
COMPLETIONS = "/v1/chat/completions"


def requests(server: Running) -> list[tuple[str, str, Any]]:
    """One request of every kind that reads or writes the store: both chat APIs and the
    FastAPI routes (chatwire's and /v1's)."""
    v1 = {"model": "mistral/mistral-small-latest", "messages": [{"role": "user", "content": "Hi"}]}
    return [
        ("POST", CHAT, server.chat_body()),
        ("POST", COMPLETIONS, v1),
        ("GET", "/api/profile", None),
        ("PATCH", "/api/profile", {"openai_api_key": "sk-new-0123456789"}),
        ("GET", "/api/custom-models", None),
        ("GET", "/v1/models", None),
    ]


async def assert_503(server: Running, method: str, path: str, body: Any, within: float) -> None:
    started = time.perf_counter()
    resp = await server.client.request(method, path, json=body, headers=server.auth)
    took = time.perf_counter() - started
    assert resp.status_code == 503, (path, resp.status_code, resp.text)
    assert resp.headers["retry-after"] == "2"
    assert resp.headers["content-type"].startswith("application/json")
    shape = resp.json()
    message = shape["error"]["message"] if path.startswith("/v1/") else shape["message"]
    assert "database is not answering" in message
    assert took < within, (path, took)


async def assert_ready(server: Running) -> None:
    resp = await server.client.get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ready"}


@pytest.mark.postgres
async def test_postgres_refusing_connections_is_a_fast_json_503_everywhere(
    make_server: ServerFactory, pg_proxy: tuple[DatabaseProxy, str]
) -> None:
    proxy, url = pg_proxy
    server = await make_server(database_url=url, cache_ttl=0)
    await assert_ready(server)
    assert (await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)).is_success

    await proxy.stop()
    for method, path, body in requests(server):
        await assert_503(server, method, path, body, within=1.0)
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=server.token, max_retries=0
    ) as client:
        with pytest.raises(openai.InternalServerError) as raised:
            await client.chat.completions.create(
                model="mistral-small-latest", messages=[{"role": "user", "content": "Hi"}]
            )
        assert raised.value.status_code == 503
    assert (await server.client.get("/healthz")).status_code == 200
    resp = await server.client.get("/readyz")
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "2"
    assert "the database is not answering" in resp.json()["message"]

    # Back again: the pool reconnects by itself.
    await proxy.resume()
    await assert_ready(server)
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 200


@pytest.mark.postgres
async def test_a_stalled_postgres_is_a_503_within_the_db_timeout(
    make_server: ServerFactory, pg_proxy: tuple[DatabaseProxy, str]
) -> None:
    proxy, url = pg_proxy
    server = await make_server(database_url=url, cache_ttl=0, db_timeout=1)
    await assert_ready(server)
    proxy.stall()
    try:
        async with asyncio.timeout(20):
            for method, path, body in requests(server):
                # A stalled connection also takes SQLAlchemy up to 2 s to give up closing.
                await assert_503(server, method, path, body, within=4.0)
            resp = await server.client.get("/readyz")
            assert resp.status_code == 503
    finally:
        await proxy.resume()
    async with asyncio.timeout(10):
        for _ in range(100):
            if (await server.client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
    await assert_ready(server)


@pytest.mark.postgres
async def test_token_lookups_waiting_on_a_stalled_database_are_capped(
    make_server: ServerFactory, pg_proxy: tuple[DatabaseProxy, str]
) -> None:
    proxy, url = pg_proxy
    server = await make_server(
        database_url=url, db_timeout=2, db_max_waiting=4, auth_failures_per_minute=0
    )
    await assert_ready(server)
    proxy.stall()

    async def random_token(i: int) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        resp = await server.client.post(
            CHAT, json=server.chat_body(), headers={"Authorization": f"Bearer random-{i}"}
        )
        return resp, time.perf_counter() - started

    try:
        async with asyncio.timeout(20):
            answers = await asyncio.gather(*(random_token(i) for i in range(40)))
    finally:
        await proxy.resume()
    assert all(resp.status_code == 503 for resp, _ in answers)
    assert all(resp.headers["retry-after"] for resp, _ in answers)
    capped = [took for resp, took in answers if "CHATWIRE_DB_MAX_WAITING" in resp.text]
    # The four let in wait out the database's timeout; the others are refused at once.
    assert len(capped) == 36
    assert max(capped) < 1.0


async def test_sqlite_locked_by_another_writer_is_a_json_503(make_server: ServerFactory) -> None:
    server = await make_server(db_timeout=0.5)
    path = server.settings.resolved_database_url.removeprefix("sqlite+aiosqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process's write transaction, held
        await assert_503(
            server, "PATCH", "/api/profile", {"openai_api_key": "sk-new-0123456789"}, within=2.0
        )
        custom = {"name": "m", "model_id": "m", "base_url": "https://example.com/v1"}
        await assert_503(server, "POST", "/api/custom-models", custom, within=2.0)
        # Reads go on: SQLite's WAL lets readers past a writer.
        resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
        assert resp.status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    resp = await server.client.patch(
        "/api/profile", json={"openai_api_key": "sk-new-0123456789"}, headers=server.auth
    )
    assert resp.status_code == 200


async def test_readyz_wants_the_schema_at_the_migrations_head(make_server: ServerFactory) -> None:
    server = await make_server()
    await assert_ready(server)
    path = server.settings.resolved_database_url.removeprefix("sqlite+aiosqlite:///")

    def downgrade_the_mark() -> None:
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE alembic_version SET version_num = '0001'")

    # In a thread: the server shares this event loop, and its usage roller may be in a
    # write transaction that this update must wait out.
    await asyncio.to_thread(downgrade_the_mark)
    resp = await server.client.get("/readyz")
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "2"
    message = resp.json()["message"]
    assert f"at migration 0001, not {head_revision()}" in message
    assert "chatwire db upgrade" in message
    assert (await server.client.get("/healthz")).status_code == 200


def test_the_head_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from chatwire.store.db import alembic_config

    config = alembic_config("sqlite+aiosqlite:///:memory:")
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
