"""Fixtures of the API tests that make the database fail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.dbproxy import DatabaseProxy
from tests.store.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture
async def pg_proxy() -> AsyncIterator[tuple[DatabaseProxy, str]]:
    """A fresh PostgreSQL database reached through a proxy of the test's own, which the
    test may stop or stall: (the proxy, the database's URL through it)."""
    name = await create_postgres_database()
    proxy = DatabaseProxy()
    await proxy.start()
    try:
        yield proxy, proxy.url(name)
    finally:
        await proxy.stop()
        await drop_postgres_database(name)
