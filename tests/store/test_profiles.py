"""Profiles as credential rows, on both backends: the fields are the store's configuration,
not the schema, and concurrent writers of one field neither fail nor leave two rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.providers.registry import credential_fields
from chatwire.store.crypto import KeyBox
from chatwire.store.db import make_engine
from chatwire.store.records import CredentialField
from chatwire.store.repo import Store
from tests.store.test_repo import raw_rows

FIELDS = credential_fields()
ACME = "acme_api_key"
ACME_KEY = "acme-live-0123456789abcdefghijkl"


@pytest.fixture
def unused_engine() -> Iterator[AsyncEngine]:
    """For what is refused before any query."""
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    yield engine
    engine.sync_engine.dispose()


async def credential_rows(engine: AsyncEngine) -> list[tuple[int, str]]:
    return sorted(
        (int(str(r["user_id"])), str(r["field"])) for r in await raw_rows(engine, "credentials")
    )


async def test_a_new_field_needs_no_migration(
    store: Store, engine: AsyncEngine, keybox: KeyBox
) -> None:
    wider = Store(engine, keybox, {**FIELDS, ACME: CredentialField(secret=True)})
    assert list(wider.fields) == [*FIELDS, ACME]
    alice, _ = await wider.create_user("alice")
    profile = await wider.update_profile(alice.id, {ACME: ACME_KEY, "mistral_api_key": "m-key"})
    assert profile.get(ACME) == ACME_KEY
    assert (await wider.get_profile(alice.id)).get(ACME) == ACME_KEY
    [row] = [row for row in await raw_rows(engine, "credentials") if row["field"] == ACME]
    assert ACME_KEY not in repr(row)
    assert keybox.decrypt(str(row["value"])) == ACME_KEY

    # A process that does not know the field leaves it alone, and keeps it.
    narrow = await store.get_profile(alice.id)
    assert list(narrow.values) == list(FIELDS)
    assert narrow.get("mistral_api_key") == "m-key"
    await store.update_profile(alice.id, {"mistral_api_key": None})
    assert (await wider.get_profile(alice.id)).get(ACME) == ACME_KEY

    cleared = await wider.update_profile(alice.id, {ACME: ""})
    assert cleared.values == dict.fromkeys([*FIELDS, ACME])
    assert await credential_rows(engine) == []


async def test_rows_of_unknown_fields_are_ignored(store: Store, engine: AsyncEngine) -> None:
    alice, _ = await store.create_user("alice")
    await store.update_profile(alice.id, {"groq_api_key": "gsk-1"})
    async with engine.begin() as connection:
        # Not even ciphertext: it must not be decrypted, only skipped.
        await connection.execute(
            text("INSERT INTO credentials (user_id, field, value) VALUES (:u, 'retired_key', 'x')"),
            {"u": alice.id},
        )
    profile = await store.get_profile(alice.id)
    assert list(profile.values) == list(FIELDS)
    assert profile.get("groq_api_key") == "gsk-1"
    with pytest.raises(ValueError, match="unknown profile field 'retired_key'"):
        await store.update_profile(alice.id, {"retired_key": "y"})


async def test_the_url_check_follows_the_declaration(engine: AsyncEngine, keybox: KeyBox) -> None:
    store = Store(
        engine,
        keybox,
        {
            "acme_base_url": CredentialField(secret=False, url=True),
            "acme_region": CredentialField(secret=False),
        },
    )
    alice, _ = await store.create_user("alice")
    for bad, fragment in [("ftp://acme.example", "http"), ("https://a.example/?x=1", "query")]:
        with pytest.raises(ValueError, match=f"acme_base_url.*{fragment}"):
            await store.update_profile(alice.id, {"acme_base_url": bad})
    profile = await store.update_profile(
        alice.id, {"acme_base_url": "https://api.acme.example/v1", "acme_region": "ftp://eu"}
    )
    assert profile.values == {
        "acme_base_url": "https://api.acme.example/v1",
        "acme_region": "ftp://eu",
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"Acme_api_key": CredentialField(secret=True)},
        {"acme-api-key": CredentialField(secret=True)},
        {"": CredentialField(secret=True)},
        {"k" * 101: CredentialField(secret=True)},
        {"use_azure_openai": CredentialField(secret=False)},
    ],
)
def test_bad_field_declarations_are_refused(
    unused_engine: AsyncEngine, keybox: KeyBox, fields: dict[str, CredentialField]
) -> None:
    with pytest.raises(ValueError, match="credential field"):
        Store(unused_engine, keybox, fields)


def test_a_field_must_be_declared_as_a_credential_field(
    unused_engine: AsyncEngine, keybox: KeyBox
) -> None:
    with pytest.raises(TypeError, match="acme_api_key"):
        Store(unused_engine, keybox, {"acme_api_key": True})  # type: ignore[dict-item]


async def test_concurrent_writers_of_one_field(
    store: Store, engine: AsyncEngine, keybox: KeyBox, database_url: str
) -> None:
    """Two processes' stores, twenty updates of one field at once, the first of them racing
    to create the user's profile row: none fails, one row is left, holding one of them."""
    alice, _ = await store.create_user("alice")
    other_engine = make_engine(database_url)
    try:
        other = Store(other_engine, keybox, FIELDS)
        values = [f"sk-{i:02d}-" + "x" * 30 for i in range(20)]
        await asyncio.gather(
            *(
                (store if i % 2 else other).update_profile(alice.id, {"openai_api_key": value})
                for i, value in enumerate(values)
            )
        )
        assert (await other.get_profile(alice.id)).get("openai_api_key") in values
    finally:
        await other_engine.dispose()
    assert await credential_rows(engine) == [(alice.id, "openai_api_key")]
    assert len(await raw_rows(engine, "profiles")) == 1


async def test_concurrent_sets_and_clears_of_one_field(store: Store, engine: AsyncEngine) -> None:
    alice, _ = await store.create_user("alice")
    changes: list[str | None] = [None if i % 3 == 0 else f"gsk-{i:02d}" for i in range(18)]
    await asyncio.gather(
        *(store.update_profile(alice.id, {"groq_api_key": value}) for value in changes)
    )
    final = (await store.get_profile(alice.id)).get("groq_api_key")
    assert final in changes
    assert await credential_rows(engine) == ([] if final is None else [(alice.id, "groq_api_key")])


async def test_concurrent_updates_of_different_fields_lose_nothing(
    store: Store, engine: AsyncEngine
) -> None:
    alice, _ = await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    await asyncio.gather(
        *(
            store.update_profile(user.id, {name: f"{user.name}-{name}"})
            for name in FIELDS
            if name != "azure_openai_endpoint"
            for user in (alice, bob)
        ),
        store.update_profile(alice.id, {"use_azure_openai": True}),
    )
    for user in (alice, bob):
        profile = await store.get_profile(user.id)
        assert profile.values == {
            name: None if name == "azure_openai_endpoint" else f"{user.name}-{name}"
            for name in FIELDS
        }
        assert profile.use_azure_openai is (user is alice)
    assert len(await credential_rows(engine)) == 2 * (len(FIELDS) - 1)
