"""The usage ledger's store: rows written off the hot path, in batches.

Writing. A chat's row goes into an in-memory buffer (``add``: a list append, never a wait);
one task writes the buffer out in one multi-row INSERT every ``interval`` seconds (250 ms),
or as soon as ``batch`` rows wait. The buffer is bounded (``limit`` rows): past it a row is
dropped, counted (``dropped``) and logged once per second at most, so a database that stops
answering never holds a chat, nor the process's memory. A failed write is logged and its
rows put back (within the bound) for the next try. ``close`` (graceful shutdown) writes
what is left. A process killed outright (SIGKILL, a crash) loses the rows still in its
buffer: at most the chats that ended in the last interval (about 250 ms) before it died,
plus, while the database is unreachable, those waiting for it.

The rollups and retention are ``ledger_rollups``'s, the reports ``ledger_reports``'s;
``Ledger`` is all three, the one object the rest of chatwire holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.ledger_reports import BY, By, Line, Reports, moment
from chatwire.store.ledger_rollups import Rollups
from chatwire.store.models import UsageRow

__all__ = ["BY", "INTERVAL", "By", "Ledger", "Line", "moment"]

log = logging.getLogger("chatwire.ledger")

INTERVAL = 0.25
BATCH = 500
LIMIT = 100_000
# Parameters per SQLite statement: the limit of SQLite before 3.32 (32,766 since).
SQLITE_PARAMETERS = 999


class Ledger(Reports, Rollups):
    """The ledger: its writer (here), its rollups and retention, and its reports."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
        limit: int = LIMIT,
    ) -> None:
        super().__init__(engine)
        self._insert_sql, self._values = _driver_insert(engine)
        self._sqlite_statements: dict[int, str] = {}
        self._sqlite_rows = max(1, SQLITE_PARAMETERS // max(1, self._insert_sql.count("?")))
        self.interval = interval
        self.batch = batch
        self.limit = limit
        self._rows: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Rows written, and rows dropped (the buffer full, or added after close).
        self.written = 0
        self.dropped = 0
        self._dropped_logged = 0.0

    # Writing.

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chatwire ledger writer")

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row (the columns of ``UsageRow``, ``id`` left out); never waits."""
        rows = self._rows
        if self._closed or len(rows) >= self.limit:
            self._drop(1)
            return
        rows.append(row)
        if len(rows) >= self.batch:
            self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._rows)

    def _drop(self, count: int) -> None:
        self.dropped += count
        now = time.monotonic()
        if now - self._dropped_logged >= 1.0:
            self._dropped_logged = now
            log.warning(
                "usage ledger: %d rows dropped so far (%d waiting, the buffer holds %d; "
                "is the database answering?)",
                self.dropped,
                len(self._rows),
                self.limit,
            )

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write every waiting row now; on failure they wait for the next try."""
        while self._rows:
            rows, self._rows = self._rows, []
            try:
                await self._insert(rows)
            except asyncio.CancelledError:
                # Stopped while writing (a shutdown): the rows wait for the last flush.
                self._rows[:0] = rows
                raise
            except (DataError, IntegrityError):
                # A row the database refuses (a value it cannot store) must not hold up the
                # others for ever: each is written alone, and the refused ones are dropped.
                self.written += await self._one_by_one(rows)
                continue
            except Exception:
                log.warning("usage ledger: writing %d rows failed", len(rows), exc_info=True)
                room = self.limit - len(self._rows)
                kept = rows[:room] if room > 0 else []
                self._rows[:0] = kept
                if len(kept) < len(rows):
                    self._drop(len(rows) - len(kept))
                return
            self.written += len(rows)

    async def _one_by_one(self, rows: Sequence[Mapping[str, Any]]) -> int:
        written = 0
        for row in rows:
            try:
                await self._insert([row])
            except (DataError, IntegrityError) as exc:
                log.warning("usage ledger: dropped a row the database refused: %s", exc.orig)
                self._drop(1)
            else:
                written += 1
        return written

    async def _insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        # One INSERT compiled by SQLAlchemy for this engine; the rows' values converted by the
        # columns' own bind processors. Measured under callgrind at 1,000 chats/s, SQLAlchemy's
        # per-row parameter handling ("insertmanyvalues" with RETURNING) cost 213,000
        # instructions per chat, more than a tenth of a whole chat. On PostgreSQL the rows go
        # in the driver's executemany (asyncpg pipelines them, in the event loop's thread).
        # On SQLite, executemany steps the statement once per row in aiosqlite's thread,
        # taking the GIL back from the busy event loop each time: the rows go instead as
        # multi-row INSERTs of up to 999 parameters each (at 2,000 chats/s with 32 connections,
        # 504 -> 443 CPU µs per chat, against 392 with no writes at all).
        values = self._values
        async with self._engine.begin() as connection:
            if self._postgres:
                await connection.exec_driver_sql(self._insert_sql, [values(row) for row in rows])
                return
            step = self._sqlite_rows
            for start in range(0, len(rows), step):
                part = rows[start : start + step]
                flat = [value for row in part for value in values(row)]
                await connection.exec_driver_sql(self._sqlite_insert(len(part)), tuple(flat))

    def _sqlite_insert(self, count: int) -> str:
        """The INSERT of ``count`` rows (made once per count)."""
        statement = self._sqlite_statements.get(count)
        if statement is None:
            head, _, group = self._insert_sql.partition(" VALUES ")
            statement = head + " VALUES " + ", ".join([group] * count)
            self._sqlite_statements[count] = statement
        return statement

    async def close(self) -> None:
        """Stop the writer and write what is left (graceful shutdown)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


def _driver_insert(
    engine: AsyncEngine,
) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """The ledger's INSERT in the engine's own SQL and parameter style, and what turns a row
    (``UsageRow``'s columns by name) into its parameters, in the statement's order, through
    each column type's bind processor for this dialect, the very one SQLAlchemy's own
    statements use (a UTC timestamp as SQLite stores it, dollars as 10^-12 units there,
    booleans as integers). The dialect's, not the generic type's: on SQLite the generic
    one left the timestamp to the driver, which wrote it in another format ("+00:00", no
    fraction at a whole second), out of order with the times SQLAlchemy compares it with,
    and turned the dollars into a float on the way."""
    table = UsageRow.__table__
    names = [column.name for column in table.columns if column.name != "id"]
    compiled = insert(UsageRow).compile(dialect=engine.dialect, column_keys=names)
    order = list(compiled.positiontup or names)
    pick = operator.itemgetter(*order)
    convert = [
        (index, processor)
        for index, name in enumerate(order)
        if (
            processor := table.c[name]
            .type.dialect_impl(engine.dialect)
            .bind_processor(engine.dialect)
        )
        is not None
    ]

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        found = list(pick(row))
        for index, processor in convert:
            found[index] = processor(found[index])
        return tuple(found)

    return str(compiled), values
