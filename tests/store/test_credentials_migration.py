"""Migration 0002 on both backends: every value stored in 0001's profile columns comes out
of the new store unchanged, and the downgrade puts each back in its column."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.providers.registry import credential_fields
from chatwire.store.crypto import KeyBox
from chatwire.store.db import alembic_config, make_engine, upgrade
from chatwire.store.repo import Store
from tests.store.test_migrations import _differences

# 0001's profile columns, and whether each held ciphertext.
OLD_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("openai_api_key", True),
    ("openai_organization_id", False),
    ("anthropic_api_key", True),
    ("google_gemini_api_key", True),
    ("mistral_api_key", True),
    ("groq_api_key", True),
    ("perplexity_api_key", True),
    ("openrouter_api_key", True),
    ("azure_openai_api_key", True),
    ("azure_openai_endpoint", False),
    ("azure_openai_35_turbo_id", False),
    ("azure_openai_45_turbo_id", False),
    ("azure_openai_45_vision_id", False),
    ("azure_openai_embeddings_id", False),
)
FIELDS = credential_fields()


@pytest.fixture
async def old_engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to 0001 only."""
    engine = make_engine(empty_database_url)  # creates the SQLite file privately
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0001")
        yield engine
    finally:
        await engine.dispose()


async def migrate(engine: AsyncEngine, action: Callable[..., None], *args: Any) -> None:
    await asyncio.to_thread(action, *args)
    # The pool's connections were opened on the old tables (asyncpg caches statements).
    await engine.dispose()


async def add_user(engine: AsyncEngine, name: str) -> int:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO users (name) VALUES (:n)"), {"n": name})
        user_id = await connection.scalar(text("SELECT id FROM users WHERE name = :n"), {"n": name})
    return int(user_id)


async def add_old_profile(
    engine: AsyncEngine, user_id: int, values: dict[str, str | None], *, azure: bool = False
) -> None:
    """A profile row as 0001's store wrote it: keys as ciphertext, settings in clear."""
    names = ", ".join(values)
    params = ", ".join(f":{name}" for name in values)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"INSERT INTO profiles (user_id, use_azure_openai, {names}) "  # noqa: S608 (fixed names)
                f"VALUES (:user_id, :azure, {params})"
            ),
            {"user_id": user_id, "azure": azure, **values},
        )


async def fetch(engine: AsyncEngine, query: str) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(text(query))).mappings()]


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))


def every_value(user: str) -> dict[str, str]:
    """A distinct plaintext for every 0001 column (the endpoint a valid URL)."""
    values = {name: f"{user}-{name}-0123456789abcdef" for name, _ in OLD_COLUMNS}
    values["azure_openai_endpoint"] = f"https://{user}.openai.azure.com"
    return values


def as_stored(values: dict[str, str | None], keybox: KeyBox) -> dict[str, str | None]:
    secret = dict(OLD_COLUMNS)
    return {
        name: keybox.encrypt(value) if value and secret[name] else value
        for name, value in values.items()
    }


async def test_upgrade_carries_every_value_over_and_downgrade_restores_it(
    old_engine: AsyncEngine, empty_database_url: str, keybox: KeyBox
) -> None:
    url = empty_database_url
    alice = await add_user(old_engine, "alice")
    bob = await add_user(old_engine, "bob")
    carol = await add_user(old_engine, "carol")
    dave = await add_user(old_engine, "dave")  # never had a profile row
    plain: dict[int, dict[str, str | None]] = {
        alice: dict(every_value("alice")),
        bob: {"mistral_api_key": "bob-mistral-key-0123456789", "azure_openai_35_turbo_id": "gpt35"},
        # An empty string reads as "not set", before and after.
        carol: {"openai_organization_id": "", "groq_api_key": None},
    }
    for user_id, values in plain.items():
        await add_old_profile(
            old_engine, user_id, as_stored(values, keybox), azure=user_id == alice
        )
    before = await fetch(old_engine, "SELECT * FROM profiles ORDER BY user_id")

    await migrate(old_engine, upgrade, url, keybox)

    store = Store(old_engine, keybox, FIELDS)
    for user_id in (alice, bob, carol, dave):
        profile = await store.get_profile(user_id)
        expected = {name: plain.get(user_id, {}).get(name) or None for name in FIELDS}
        assert profile.values == expected, user_id
        assert profile.use_azure_openai is (user_id == alice)
    # Keys were copied as they were (no re-encryption); each row keeps its profile's date.
    rows = await fetch(old_engine, "SELECT * FROM credentials")
    assert len(rows) == len(OLD_COLUMNS) + 2
    old = {row["user_id"]: row for row in before}
    for row in rows:
        if dict(OLD_COLUMNS)[row["field"]]:
            assert row["value"] == old[row["user_id"]][row["field"]]
        else:
            assert plain[row["user_id"]][row["field"]] not in row["value"]
        assert row["updated_at"] == old[row["user_id"]]["updated_at"]
    async with old_engine.connect() as connection:
        assert await connection.run_sync(_differences) == []

    await migrate(old_engine, command.downgrade, alembic_config(url, keybox), "0001")
    # Every value is back in its column; an empty string comes back as the NULL it meant.
    assert await fetch(old_engine, "SELECT * FROM profiles ORDER BY user_id") == [
        {name: None if value == "" else value for name, value in row.items()} for row in before
    ]
    assert "credentials" not in await tables(old_engine)


async def test_what_the_new_store_wrote_goes_back_into_the_columns(
    old_engine: AsyncEngine, empty_database_url: str, keybox: KeyBox
) -> None:
    url = empty_database_url
    await migrate(old_engine, upgrade, url, keybox)
    wider = {**FIELDS, "acme_api_key": FIELDS["mistral_api_key"]}
    store = Store(old_engine, keybox, wider)
    erin, _ = await store.create_user("erin")
    frank, _ = await store.create_user("frank")
    await store.update_profile(
        erin.id,
        {
            "mistral_api_key": "erin-mistral-key-0123456789",
            "azure_openai_endpoint": "https://erin.openai.azure.com",
            "acme_api_key": "a field 0001 never had",
            "use_azure_openai": True,
        },
    )
    async with old_engine.begin() as connection:  # a row without a profile row
        await connection.execute(
            text("INSERT INTO credentials (user_id, field, value) VALUES (:u, :f, :v)"),
            {"u": frank.id, "f": "azure_openai_45_turbo_id", "v": keybox.encrypt("gpt4")},
        )

    await migrate(old_engine, command.downgrade, alembic_config(url, keybox), "0001")
    rows = {row["user_id"]: row for row in await fetch(old_engine, "SELECT * FROM profiles")}
    assert set(rows) == {erin.id, frank.id}
    assert keybox.decrypt(rows[erin.id]["mistral_api_key"]) == "erin-mistral-key-0123456789"
    assert rows[erin.id]["azure_openai_endpoint"] == "https://erin.openai.azure.com"
    assert rows[erin.id]["use_azure_openai"] in (True, 1)
    assert rows[frank.id]["azure_openai_45_turbo_id"] == "gpt4"
    assert rows[frank.id]["use_azure_openai"] in (False, 0)
    unset = [name for name, _ in OLD_COLUMNS if name != "azure_openai_45_turbo_id"]
    assert all(rows[frank.id][name] is None for name in unset)

    await migrate(old_engine, upgrade, url, keybox)
    profile = await Store(old_engine, keybox, FIELDS).get_profile(erin.id)
    assert profile.get("mistral_api_key") == "erin-mistral-key-0123456789"
    assert profile.get("azure_openai_endpoint") == "https://erin.openai.azure.com"
    assert (await Store(old_engine, keybox, wider).get_profile(erin.id)).get("acme_api_key") is None


async def test_settings_in_clear_need_the_key_and_nothing_changes_without_it(
    old_engine: AsyncEngine, empty_database_url: str, keybox: KeyBox
) -> None:
    url = empty_database_url
    alice = await add_user(old_engine, "alice")
    stored = as_stored(
        {"groq_api_key": "gsk-0123456789", "azure_openai_endpoint": "https://a.x"}, keybox
    )
    await add_old_profile(old_engine, alice, stored)
    before = await fetch(old_engine, "SELECT * FROM profiles")

    with pytest.raises(RuntimeError, match="needs the secret key"):
        await migrate(old_engine, upgrade, url)
    assert await fetch(old_engine, "SELECT * FROM profiles") == before
    assert "credentials" not in await tables(old_engine)
    assert await fetch(old_engine, "SELECT version_num FROM alembic_version") == [
        {"version_num": "0001"}
    ]

    # Keys alone are copied as they are: no key needed.
    async with old_engine.begin() as connection:
        await connection.execute(text("UPDATE profiles SET azure_openai_endpoint = NULL"))
    await migrate(old_engine, upgrade, url)
    profile = await Store(old_engine, keybox, FIELDS).get_profile(alice)
    assert profile.get("groq_api_key") == "gsk-0123456789"
    assert profile.get("azure_openai_endpoint") is None
