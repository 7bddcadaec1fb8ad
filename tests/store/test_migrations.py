"""Migrations: they agree with the models, are repeatable and concurrent-safe, and the
SQLite files they create are private."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Text, inspect, text

from chatwire.store.db import alembic_config, make_engine, normalize_url, upgrade
from chatwire.store.models import Base, CredentialRow, ProfileRow

T = TypeVar("T")
TABLES = {
    "users",
    "api_tokens",
    "profiles",
    "credentials",
    "custom_models",
    "responses",
    "response_items",
    "web_sessions",
    "web_chats",
    "policies",
    "usage",
    "usage_daily",
    "usage_rollup",
}
HEAD = "0007"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _differences(connection: Connection) -> list[Any]:
    # Server defaults are compared on PostgreSQL only: SQLite reflects '' as "''", a false alarm.
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": connection.dialect.name == "postgresql",
        },
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _versions(connection: Connection) -> list[str]:
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


async def _on(url: str, query: Callable[[Connection], T]) -> T:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(query)
    finally:
        await engine.dispose()


async def test_migrations_match_models(database_url: str) -> None:
    assert await _on(database_url, _differences) == []
    assert await _on(database_url, _tables) == TABLES | {"alembic_version"}


async def test_upgrade_is_repeatable_and_reversible(database_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert head == [HEAD]
    await asyncio.to_thread(upgrade, database_url)
    assert await _on(database_url, _versions) == head

    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
    assert await _on(database_url, _tables) == {"alembic_version"}
    await asyncio.to_thread(upgrade, database_url)
    assert await _on(database_url, _differences) == []


async def test_upgrade_from_inside_an_event_loop(empty_database_url: str) -> None:
    upgrade(empty_database_url)  # runs the migration loop in a helper thread
    assert await _on(empty_database_url, _versions) == [HEAD]


@pytest.mark.postgres
async def test_concurrent_upgrades_take_turns(empty_postgres_url: str) -> None:
    """Replicas starting at once all succeed: an advisory lock makes them take turns."""
    script = "import sys; from chatwire.store.db import upgrade; upgrade(sys.argv[1])"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, empty_postgres_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(6)
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), timeout=60
    )
    failures = [
        err.decode()
        for process, (_, err) in zip(processes, results, strict=True)
        if process.returncode != 0
    ]
    assert failures == []
    assert await _on(empty_postgres_url, _versions) == [HEAD]


def test_credentials_are_rows_not_profile_columns() -> None:
    """No field name is in the schema: a new provider's field needs no migration."""
    assert {column.name for column in ProfileRow.__table__.columns} == {
        "user_id",
        "use_azure_openai",
        "updated_at",
    }
    columns = {column.name: column for column in CredentialRow.__table__.columns}
    assert set(columns) == {"user_id", "field", "value", "updated_at"}
    assert [column.name for column in CredentialRow.__table__.primary_key] == ["user_id", "field"]
    assert not columns["value"].nullable
    assert type(columns["value"].type) is Text  # ciphertext, every value


async def test_sqlite_files_are_private(tmp_path: Path, permissive_umask: None) -> None:
    data_dir = tmp_path / "fresh" / "data"
    url = f"sqlite+aiosqlite:///{data_dir / 'chatwire.db'}"
    await asyncio.to_thread(upgrade, url)
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "chatwire.db") == 0o600

    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO users (name) VALUES ('x')"))
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("foreign_keys", "journal_mode", "busy_timeout")
            }
            assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 5000}
            for path in data_dir.iterdir():  # chatwire.db, -wal and -shm
                assert mode(path) == 0o600, path.name
    finally:
        await engine.dispose()


def test_make_engine_creates_the_sqlite_file_privately(
    tmp_path: Path, permissive_umask: None
) -> None:
    make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd' / 'x.db'}").sync_engine.dispose()
    assert mode(tmp_path / "d") == 0o700
    assert mode(tmp_path / "d" / "x.db") == 0o600


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
    ],
)
def test_urls_get_the_async_driver(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "sqlite+pysqlite:///x.db"]
)
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"asyncpg|aiosqlite"):
        normalize_url(url)


def test_engine_errors_hide_parameters() -> None:
    engine = make_engine("postgresql+asyncpg://u:pw@127.0.0.1:1/db")
    assert engine.sync_engine.hide_parameters
    assert "pw" not in repr(engine.url)
    engine.sync_engine.dispose()
