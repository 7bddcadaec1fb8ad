"""Store fixtures, each test run on SQLite (a file in tmp_path) and on PostgreSQL.

The PostgreSQL runs use a fresh database ``chatwire_test_<hex>`` on the local server
(trust auth, user postgres), made from one migrated with ``upgrade()`` once per test process
(``tests.templates``), and dropped afterwards. If the
server is not reachable those runs fail: CI starts it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatwire.providers.registry import credential_fields
from chatwire.store.crypto import KeyBox
from chatwire.store.db import make_engine
from chatwire.store.repo import Store
from tests.templates import PostgresTemplate, copy_migrated_sqlite

POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


async def _maintenance(statement: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction: AUTOCOMMIT, on the 'postgres' db.
    engine = create_async_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_SERVER}: {exc}")
    finally:
        await engine.dispose()


async def create_postgres_database() -> str:
    name = f"chatwire_test_{secrets.token_hex(6)}"
    await _maintenance(f'CREATE DATABASE "{name}"')
    return name


async def drop_postgres_database(name: str) -> None:
    await _maintenance(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, for the tests that are about PostgreSQL only."""
    name = await create_postgres_database()
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        await drop_postgres_database(name)


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to a database that does not have the schema yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'chatwire.db'}"
        return
    name = await create_postgres_database()
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        await drop_postgres_database(name)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate]:
    """This test process's migrated PostgreSQL database, the fresh ones' template."""
    template = PostgresTemplate(POSTGRES_SERVER)
    yield template
    if template.name is not None:
        asyncio.run(drop_postgres_database(template.name))


@pytest.fixture(params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_template: PostgresTemplate
) -> AsyncIterator[str]:
    """A URL to a freshly migrated database: a copy of one migrated once per test process."""
    if request.param == "sqlite":
        path = tmp_path / "data" / "chatwire.db"
        copy_migrated_sqlite(path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = await asyncio.to_thread(postgres_template.database, _create_sync)
    name = f"chatwire_test_{secrets.token_hex(6)}"
    await _maintenance(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        await drop_postgres_database(name)


def _create_sync(name: str) -> None:
    asyncio.run(_maintenance(f'CREATE DATABASE "{name}"'))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def keybox() -> KeyBox:
    return KeyBox([Fernet.generate_key()])


@pytest.fixture
def store(engine: AsyncEngine, keybox: KeyBox) -> Store:
    return Store(engine, keybox, credential_fields())
