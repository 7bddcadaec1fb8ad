"""When the database is unavailable, and whether it is ready to serve.

``unavailable`` is the one place a database failure is told from a fault of chatwire's own:
by exception type, SQLite's error code and PostgreSQL's SQLSTATE class, never by message
wording. The store raises ``StoreUnavailable`` (503, Retry-After) for what it says, so every
route answers a sick database in its own shape (``store.repo``); ``readiness`` is
``GET /readyz``'s check. Alembic is not imported: the migrations' head is read from their
file names (``0001_initial.py``, ...), which ``chatwire db revision`` numbers in order.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.errors import StoreUnavailable

log = logging.getLogger("chatwire.store")

RETRY_AFTER = 2
# SQLite's primary result codes that say "not now" rather than "wrong": busy, locked, out of
# memory, I/O error, disk full, cannot open, lock protocol.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 10, 13, 14, 15})
# PostgreSQL's SQLSTATE classes of the same kind: connection exception, insufficient
# resources, operator intervention (statement timeout, shutdown, starting up), system error.
_POSTGRES_UNAVAILABLE = ("08", "53", "57", "58")
_REVISION_FILE = re.compile(r"^(\d{4,})_\w+\.py$")


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc``, raised by the database driver or pool, means the database cannot
    answer now (a request may pass later), rather than a fault in the request or chatwire."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # no pooled connection came free within the pool timeout
    if isinstance(exc, OSError | TimeoutError):
        # asyncpg raises these as they are: a refused or lost connection, the connect or
        # statement timeout.
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return code is not None and (code & 0xFF) in _SQLITE_UNAVAILABLE
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate.startswith(_POSTGRES_UNAVAILABLE)
    # asyncpg's interface errors (a connection closed under a statement) have no SQLSTATE.
    return isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError)


def store_unavailable(exc: BaseException) -> StoreUnavailable:
    log.warning("the database is unavailable: %s: %s", type(exc).__name__, _first_line(exc))
    return StoreUnavailable(
        "chatwire's database is not answering right now (it refused, timed out or is "
        "locked); try again in a moment.",
        RETRY_AFTER,
    )


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy's messages go on with the statement and a link; parameters are hidden.
    return str(exc).partition("\n")[0][:300]


@asynccontextmanager
async def guarded() -> AsyncIterator[None]:
    """Raise ``StoreUnavailable`` from what ``unavailable`` says inside the block."""
    try:
        yield
    except Exception as exc:
        if not unavailable(exc):
            raise
        raise store_unavailable(exc) from exc


def head_revision() -> str:
    """The newest migration's revision, from the names of the migration files."""
    versions = resources.files("chatwire") / "migrations" / "versions"
    found = [m.group(1) for f in versions.iterdir() if (m := _REVISION_FILE.match(f.name))]
    return max(found, key=int)


async def readiness(engine: AsyncEngine) -> str | None:
    """None when the database answers and its schema is at the migrations' head; else what
    is wrong, for ``GET /readyz``'s 503."""
    try:
        async with guarded(), engine.connect() as connection:
            current = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except StoreUnavailable:
        return "the database is not answering (it refused, timed out or is locked)"
    except sa_exc.DBAPIError:
        current = None  # no alembic_version table: never migrated
    head = head_revision()
    if current != head:
        return (
            f"the database schema is at migration {current or 'none'}, not {head}: "
            "run 'chatwire db upgrade'"
        )
    return None
