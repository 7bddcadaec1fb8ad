"""Migration 0005 on both backends: the users and tokens already there carry over, the
existing user of the lowest id becomes the admin, and the downgrade gives 0004's tables back
with their rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.core.security import hash_token
from chatwire.providers.registry import credential_fields
from chatwire.store.crypto import KeyBox
from chatwire.store.db import alembic_config, make_engine, upgrade
from chatwire.store.repo import Store
from tests.store.test_credentials_migration import migrate
from tests.store.test_migrations import _differences


@pytest.fixture
async def old_engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to 0004 only."""
    engine = make_engine(empty_database_url)
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0004")
        yield engine
    finally:
        await engine.dispose()


async def old_user(engine: AsyncEngine, name: str, *tokens: str) -> int:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO users (name) VALUES (:n)"), {"n": name})
        user_id = int(
            await connection.scalar(text("SELECT id FROM users WHERE name = :n"), {"n": name})
        )
        for token in tokens:
            await connection.execute(
                text("INSERT INTO api_tokens (user_id, token_hash) VALUES (:u, :h)"),
                {"u": user_id, "h": hash_token(token)},
            )
    return user_id


async def test_existing_rows_carry_over(
    old_engine: AsyncEngine, empty_database_url: str, keybox: KeyBox
) -> None:
    gone = await old_user(old_engine, "gone")
    bob = await old_user(old_engine, "bob", "cw_bob_first", "cw_bob_second")
    carol = await old_user(old_engine, "carol", "cw_carol")
    async with old_engine.begin() as connection:
        # The first user was deleted: the lowest id left is bob's.
        await connection.execute(text("DELETE FROM users WHERE id = :i"), {"i": gone})

    await migrate(old_engine, upgrade, empty_database_url)
    async with old_engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
    store = Store(old_engine, keybox, credential_fields())
    assert [(u.id, u.name, u.role) for u in await store.list_users()] == [
        (bob, "bob", "admin"),
        (carol, "carol", "member"),
    ]
    for token, user_id in (("cw_bob_first", bob), ("cw_bob_second", bob), ("cw_carol", carol)):
        found = await store.user_for_token(token)
        assert found is not None
        assert found.id == user_id
        assert found.token_name is None
        assert found.policy is None
        assert found.token_policy is None
    assert [t.name for t in await store.list_tokens("bob")] == [None, None]
    # New rows live alongside: a named token, policies.
    await store.add_token("carol", name="ci-bot")
    await store.change_user_policy(carol, {"rpm": 5})
    await store.change_default_policy({"tpm": 5})

    await migrate(old_engine, command.downgrade, alembic_config(empty_database_url), "0004")
    async with old_engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM users ORDER BY id"))).scalars()
        assert list(names) == ["bob", "carol"]
        count = await connection.scalar(text("SELECT count(*) FROM api_tokens"))
        assert count == 4
    await migrate(old_engine, upgrade, empty_database_url)
    again = Store(old_engine, keybox, credential_fields())
    assert [u.role for u in await again.list_users()] == ["admin", "member"]
    assert await again.default_policy() is None


async def test_an_empty_database_migrates_with_no_admin_to_make(empty_database_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM users")) == 0
    finally:
        await engine.dispose()
