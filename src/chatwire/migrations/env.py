"""Alembic environment: async engines, one transaction, serialised on PostgreSQL.

Run through ``chatwire.store.db.upgrade`` (which builds the configuration in code and
passes the URL as ``config.attributes["database_url"]``), or with a connection passed as
``config.attributes["connection"]``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from chatwire.store.models import Base

# Any constant shared by every chatwire process: "chatwire" in ASCII.
MIGRATION_LOCK_KEY = 0x6368617477697265

config = context.config
target_metadata = Base.metadata


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends, so processes starting together take turns;
            # the later ones then find the schema current and do nothing.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: run migrations with chatwire.store.db.upgrade()")
    asyncio.run(run_async_migrations(url))


if context.is_offline_mode():
    raise RuntimeError("chatwire migrations run online only (chatwire db upgrade)")
run_migrations_online()
