"""Engines, sessions and schema upgrades for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Alembic is imported by the functions that migrate, not here: the app and the commands
that only read and write records never load it.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chatwire.store.crypto import KeyBox, ensure_data_dir

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "chatwire:migrations"


def normalize_url(url: str | URL) -> URL:
    """The URL with chatwire's async driver filled in; other databases are refused."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername not in ("postgres", "postgresql", "postgresql+asyncpg"):
            raise ValueError("PostgreSQL URLs must use the asyncpg driver (postgresql+asyncpg://)")
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+aiosqlite"):
            raise ValueError("SQLite URLs must use the aiosqlite driver (sqlite+aiosqlite://)")
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(
        f"unsupported database '{backend}': use sqlite+aiosqlite:/// or postgresql+asyncpg://"
    )


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or url.query.get("mode") == "memory":
        return None  # URI filenames: left to SQLite
    return Path(database)


def prepare_sqlite_file(path: Path) -> None:
    """Create the data directory (0700) and an empty database file (0600) if missing.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    ensure_data_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _sqlite_setup(busy_timeout: float) -> Any:
    milliseconds = max(1, round(busy_timeout * 1000))

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            # Wait this long for another writer's lock, then fail (a 503 in the app).
            cursor.execute(f"PRAGMA busy_timeout={milliseconds:d}")
            # Readers and the writer do not block each other; several workers share the file.
            cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    return on_connect


DEFAULT_TIMEOUT = 5.0


# PostgreSQL connections a process keeps: for its work, and for its lookups (make_reader).
POOL_SIZE = 20
READER_POOL_SIZE = 8


def make_engine(url: str, timeout: float = DEFAULT_TIMEOUT) -> AsyncEngine:
    """An async engine; parameters are hidden from error messages (they may carry secrets).

    ``timeout`` (``CHATWIRE_DB_TIMEOUT``) bounds each wait on the database: connecting, one
    statement, a connection from the pool, and (SQLite) another writer's lock. A database
    that stalls then fails the request instead of holding it as long as it stalls.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            prepare_sqlite_file(path)
        engine = create_async_engine(parsed, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_setup(timeout))
        return engine
    return _postgres_engine(parsed, timeout, POOL_SIZE)


def _postgres_engine(parsed: URL, timeout: float, pool_size: int, **options: Any) -> AsyncEngine:
    return create_async_engine(
        parsed,
        hide_parameters=True,
        # Every connection kept once opened, none past it (a wait for one instead, bounded by
        # pool_timeout): a pool that closes what it opened past a kept number reopens one
        # for nearly every request under load. Measured with 32 connections of 10,000
        # distinct users, 74-82 new PostgreSQL connections per 1,000 requests, each a
        # backend forked and a login, at a fifth of the one-user requests/s.
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout,
        pool_pre_ping=True,  # survive server restarts and idle-connection reapers
        pool_recycle=1800,
        # asyncpg's own: to connect, and for each statement (the pre-ping's included).
        connect_args={"timeout": timeout, "command_timeout": timeout},
        **options,
    )


def make_reader(url: str, timeout: float = DEFAULT_TIMEOUT) -> AsyncEngine | None:
    """On PostgreSQL, a small engine of autocommit connections for the lookups a request's
    cache misses make (a token's caller, a profile): each a statement or two, so no BEGIN
    and COMMIT round trips, and a pre-ping of one statement (the main engine's, outside a
    transaction, is BEGIN, a ping, ROLLBACK). Measured on the 2-core VM, a token lookup
    through an ORM session took 2,900-3,400 µs of CPU, through this 510-580 µs. None on
    SQLite, whose lookups use the main engine."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return None
    # Lookups take a millisecond or two: a few connections serve thousands a second.
    return _postgres_engine(parsed, timeout, READER_POOL_SIZE, isolation_level="AUTOCOMMIT")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Records are copied out inside the transaction; nothing needs reloading after commit.
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str, keybox: KeyBox | None = None) -> Config:
    """An Alembic configuration built in code: no alembic.ini is needed on disk.

    ``keybox``: for migrations that encrypt or decrypt stored values (0002 encrypts the
    profile settings that were kept in clear); one that needs it and has none stops before
    changing anything, naming what is missing.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    # Passed as an attribute, not an option: configparser would mangle '%' in passwords.
    config.attributes["database_url"] = normalize_url(url).render_as_string(hide_password=False)
    config.attributes["keybox"] = keybox
    return config


def upgrade(url: str, keybox: KeyBox | None = None) -> None:
    """Apply every migration (``alembic upgrade head``), synchronously.

    Safe to run from several processes at once on PostgreSQL (an advisory lock serialises
    them). Not from several threads of one process at once: Alembic's context is global.
    A database holding profiles needs ``keybox`` (see ``alembic_config``).
    """
    from alembic import command

    parsed = normalize_url(url)
    path = sqlite_file(parsed)
    if path is not None:
        prepare_sqlite_file(path)
    config = alembic_config(url, keybox)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, "head")
        return
    # Called from inside an event loop: the migration env needs a loop of its own.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatwire-upgrade") as pool:
        pool.submit(command.upgrade, config, "head").result()


def new_revision(url: str, message: str, *, autogenerate: bool) -> Path:
    """Write a new, empty migration into the package's ``migrations/versions``, numbered
    after the head (``alembic revision``); with ``autogenerate``, filled with what the
    models have that the database at ``url`` (which must be at head) does not. Returns its
    path."""
    from alembic import command
    from alembic.script import Script, ScriptDirectory

    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    rev_id = f"{int(head) + 1:04d}" if head is not None and head.isdigit() else None
    script = command.revision(config, message, autogenerate=autogenerate, rev_id=rev_id)
    if not isinstance(script, Script):
        raise RuntimeError(f"Alembic wrote no single revision: {script!r}")
    return Path(script.path)
