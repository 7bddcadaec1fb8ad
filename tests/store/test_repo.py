"""Store behaviour on both backends: users, tokens, profiles and custom models."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.core.security import TOKEN_PREFIX, hash_token
from chatwire.providers.registry import credential_fields
from chatwire.store.crypto import KeyBox, SecretKeyMismatch
from chatwire.store.records import MAX_FIELD_LENGTH, UserRecord
from chatwire.store.repo import CustomModelExists, Store, UserExists, UserNotFound

KEY = "sk-ant-0123456789abcdefSECRET"
FIELDS = credential_fields()


async def raw_rows(engine: AsyncEngine, table: str) -> list[dict[str, object]]:
    async with engine.connect() as connection:
        result = await connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 (fixed)
        return [dict(row) for row in result.mappings()]


async def user_of(store: Store, token: str) -> UserRecord | None:
    """The user a token stands for, as ``get_user`` has it (without the token's own)."""
    found = await store.user_for_token(token)
    return None if found is None else replace(found, token_id=None, token_name=None)


# Users and tokens


async def test_create_user_and_authenticate(store: Store) -> None:
    user, token = await store.create_user("alice")
    assert user.name == "alice"
    assert token.startswith(TOKEN_PREFIX)
    assert user.role == "admin"  # the first user
    found = await store.user_for_token(token)
    assert found is not None
    assert found.token_id is not None
    assert found == replace(user, token_id=found.token_id)
    assert await store.get_user("alice") == user
    assert await store.get_user("bob") is None
    assert await store.count_users() == 1
    bob, _ = await store.create_user("bob")
    assert await store.list_users() == [user, bob]
    assert await store.count_users() == 2


async def test_duplicate_user_is_refused(store: Store) -> None:
    await store.create_user("alice")
    with pytest.raises(UserExists, match="alice"):
        await store.create_user("alice")
    assert await store.count_users() == 1
    # Names are case-sensitive on both backends.
    await store.create_user("Alice")


@pytest.mark.parametrize(
    "name", ["", "x" * 101, "a\nb", "a\x00b", "tab\there", " padded", "zw\u200bj"]
)
async def test_invalid_user_names(store: Store, name: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        await store.create_user(name)
    assert await store.count_users() == 0


async def test_longest_and_unicode_names(store: Store) -> None:
    for name in ("x" * 100, "Zoë Ångström", "名前"):
        user, _ = await store.create_user(name)
        assert (await store.get_user(name)) == user


async def test_only_the_token_hash_is_stored(store: Store, engine: AsyncEngine) -> None:
    _, first = await store.create_user("alice")
    second = await store.create_token("alice")
    rows = await raw_rows(engine, "api_tokens")
    assert sorted(str(row["token_hash"]) for row in rows) == sorted(
        [hash_token(first), hash_token(second)]
    )
    dump = repr(rows)
    assert first not in dump
    assert second not in dump


async def test_tokens_list_and_revoke(store: Store) -> None:
    alice, first = await store.create_user("alice")
    second = await store.create_token("alice")
    assert await user_of(store, second) == alice
    tokens = await store.list_tokens("alice")
    assert [t.revoked_at for t in tokens] == [None, None]
    assert all(t.user_name == "alice" and t.created_at.tzinfo is not None for t in tokens)

    assert await store.revoke_token(tokens[0].id) is True
    assert await store.revoke_token(tokens[0].id) is False  # already revoked
    assert await store.revoke_token(999_999) is False
    assert await store.user_for_token(first) is None
    assert await user_of(store, second) == alice
    revoked = (await store.list_tokens("alice"))[0]
    assert revoked.revoked_at is not None
    assert revoked.revoked_at.utcoffset() == UTC.utcoffset(None)

    assert await store.revoke_token_value(second) is True
    assert await store.revoke_token_value(second) is False
    assert await store.revoke_token_value("cw_never-issued") is False
    assert await store.user_for_token(second) is None


async def test_revoke_all_tokens_touches_only_that_user(store: Store) -> None:
    await store.create_user("alice")
    await store.create_token("alice")
    bob, bob_token = await store.create_user("bob")
    assert await store.revoke_all_tokens("alice") == 2
    assert await store.revoke_all_tokens("alice") == 0
    assert await user_of(store, bob_token) == bob
    assert [t.user_name for t in await store.list_tokens("bob")] == ["bob"]


async def test_unknown_user_for_token_operations(store: Store) -> None:
    for call in (store.create_token, store.list_tokens, store.revoke_all_tokens):
        with pytest.raises(UserNotFound, match="ghost"):
            await call("ghost")


@pytest.mark.parametrize("token", ["", "cw_unknown", "x" * 10_000, "\ud800"])
async def test_unknown_tokens_are_none(store: Store, token: str) -> None:
    await store.create_user("alice")
    assert await store.user_for_token(token) is None


async def test_deleting_a_user_cascades(store: Store, engine: AsyncEngine) -> None:
    alice, token = await store.create_user("alice")
    await store.update_profile(alice.id, {"mistral_api_key": KEY})
    await store.create_custom_model(
        alice.id, name="m", model_id="m", base_url="http://x", api_key="k"
    )
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": alice.id})
    assert await store.user_for_token(token) is None
    for table in ("api_tokens", "profiles", "credentials", "custom_models"):
        assert await raw_rows(engine, table) == []


# Profiles


async def test_new_user_has_an_empty_profile(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    profile = await store.get_profile(alice.id)
    assert profile.user_id == alice.id
    assert list(profile.values) == list(FIELDS)
    assert all(value is None for value in profile.values.values())
    assert profile.use_azure_openai is False


async def test_profile_round_trip_and_secret_encrypted_at_rest(
    store: Store, engine: AsyncEngine, keybox: KeyBox
) -> None:
    alice, _ = await store.create_user("alice")
    profile = await store.update_profile(
        alice.id,
        {
            "anthropic_api_key": KEY,
            "azure_openai_endpoint": "https://example.openai.azure.com",
            "use_azure_openai": True,
        },
    )
    assert profile.get("anthropic_api_key") == KEY
    assert profile.get("azure_openai_endpoint") == "https://example.openai.azure.com"
    assert profile.use_azure_openai is True
    assert await store.get_profile(alice.id) == profile

    [row] = await raw_rows(engine, "profiles")
    assert row["use_azure_openai"] in (True, 1)
    rows = {str(row["field"]): row for row in await raw_rows(engine, "credentials")}
    assert set(rows) == {"anthropic_api_key", "azure_openai_endpoint"}
    assert {row["user_id"] for row in rows.values()} == {alice.id}
    assert KEY not in repr(rows)
    assert keybox.decrypt(str(rows["anthropic_api_key"]["value"])) == KEY
    # Settings that are not secret are encrypted too (they are only shown unmasked).
    assert "example.openai.azure.com" not in repr(rows)
    assert (
        keybox.decrypt(str(rows["azure_openai_endpoint"]["value"]))
        == "https://example.openai.azure.com"
    )


async def test_profile_update_keeps_clears_and_upserts(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    await store.update_profile(alice.id, {"openai_api_key": "sk-1", "groq_api_key": "gsk-1"})
    profile = await store.update_profile(alice.id, {"openai_api_key": "sk-2"})
    assert profile.get("openai_api_key") == "sk-2"
    assert profile.get("groq_api_key") == "gsk-1"  # absent: kept
    profile = await store.update_profile(alice.id, {"openai_api_key": None, "groq_api_key": ""})
    assert profile.values["openai_api_key"] is None
    assert profile.values["groq_api_key"] is None
    profile = await store.update_profile(alice.id, {"use_azure_openai": True})
    assert profile.use_azure_openai is True
    assert (await store.update_profile(alice.id, {})) == profile


async def test_every_profile_field_round_trips(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    changes: dict[str, str | bool | None] = {
        name: f"{name}-" + "v" * (MAX_FIELD_LENGTH - len(name) - 1) for name in FIELDS
    }
    endpoint = "https://example.openai.azure.com/"
    changes["azure_openai_endpoint"] = endpoint + "v" * (MAX_FIELD_LENGTH - len(endpoint))
    profile = await store.update_profile(alice.id, changes)
    assert profile.values == changes
    assert (await store.get_profile(alice.id)).values == changes


async def test_profile_validation_names_the_field_not_the_value(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    too_long = "s" * (MAX_FIELD_LENGTH + 1)
    with pytest.raises(ValueError, match="mistral_api_key") as caught:
        await store.update_profile(alice.id, {"mistral_api_key": too_long})
    assert too_long not in str(caught.value)
    with pytest.raises(ValueError, match="no_such_field"):
        await store.update_profile(alice.id, {"no_such_field": "x"})
    with pytest.raises(ValueError, match="use_azure_openai"):
        await store.update_profile(alice.id, {"use_azure_openai": "yes"})
    with pytest.raises(ValueError, match="openai_api_key"):
        await store.update_profile(alice.id, {"openai_api_key": True})
    # A failed update changes nothing, even the valid fields given with it.
    with pytest.raises(ValueError, match="unknown"):
        await store.update_profile(alice.id, {"groq_api_key": "gsk", "bogus": "x"})
    assert all(v is None for v in (await store.get_profile(alice.id)).values.values())


async def test_profiles_are_per_user(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    await store.update_profile(alice.id, {"mistral_api_key": "alice-key"})
    await store.update_profile(bob.id, {"mistral_api_key": "bob-key"})
    assert (await store.get_profile(alice.id)).get("mistral_api_key") == "alice-key"
    assert (await store.get_profile(bob.id)).get("mistral_api_key") == "bob-key"


async def test_profile_of_unknown_user(store: Store) -> None:
    with pytest.raises(UserNotFound):
        await store.update_profile(424242, {"mistral_api_key": KEY})


async def test_profile_with_the_wrong_secret_key(store: Store, engine: AsyncEngine) -> None:
    alice, _ = await store.create_user("alice")
    await store.update_profile(alice.id, {"mistral_api_key": KEY})
    stranger = Store(engine, KeyBox([Fernet.generate_key()]), FIELDS)
    with pytest.raises(SecretKeyMismatch, match="CHATWIRE_SECRET_KEY"):
        await stranger.get_profile(alice.id)


def test_the_secret_fields_are_the_api_keys() -> None:
    assert {name for name, field in FIELDS.items() if field.secret} == {
        name for name in FIELDS if name.endswith("_api_key")
    }
    assert [name for name, field in FIELDS.items() if field.url] == ["azure_openai_endpoint"]


# Custom models


async def test_custom_model_round_trip(store: Store, engine: AsyncEngine, keybox: KeyBox) -> None:
    alice, _ = await store.create_user("alice")
    created = await store.create_custom_model(
        alice.id, name="local", model_id="llama3", base_url="http://127.0.0.1:11434/v1", api_key=KEY
    )
    assert created.api_key == KEY
    assert created.context_length == 4096
    assert created.description == ""
    assert await store.get_custom_model(alice.id, created.id) == created
    assert await store.list_custom_models(alice.id) == [created]

    [row] = await raw_rows(engine, "custom_models")
    assert KEY not in repr(row)
    assert keybox.decrypt(str(row["api_key"])) == KEY

    updated = await store.update_custom_model(
        alice.id, created.id, context_length=8192, description="fast", api_key="new-key"
    )
    assert updated is not None
    assert (updated.context_length, updated.description, updated.api_key) == (
        8192,
        "fast",
        "new-key",
    )
    assert updated.name == "local"
    assert await store.get_custom_model(alice.id, created.id) == updated
    assert await store.delete_custom_model(alice.id, created.id) is True
    assert await store.delete_custom_model(alice.id, created.id) is False
    assert await store.get_custom_model(alice.id, created.id) is None


async def test_custom_models_are_isolated_between_users(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    mine = await store.create_custom_model(
        alice.id, name="m", model_id="a", base_url="https://a.example", api_key="alice-key"
    )
    theirs = await store.create_custom_model(
        bob.id, name="m", model_id="b", base_url="https://b.example", api_key="bob-key"
    )
    assert await store.list_custom_models(alice.id) == [mine]
    assert await store.list_custom_models(bob.id) == [theirs]
    assert await store.get_custom_model(bob.id, mine.id) is None
    assert await store.update_custom_model(bob.id, mine.id, model_id="hijacked") is None
    assert await store.delete_custom_model(bob.id, mine.id) is False
    assert await store.get_custom_model(alice.id, mine.id) == mine


async def test_custom_model_names_unique_per_user(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    first = await store.create_custom_model(
        alice.id, name="m", model_id="a", base_url="https://a.example", api_key=""
    )
    second = await store.create_custom_model(
        alice.id, name="n", model_id="a", base_url="https://a.example", api_key=""
    )
    with pytest.raises(CustomModelExists, match="'m'"):
        await store.create_custom_model(
            alice.id, name="m", model_id="b", base_url="https://b.example", api_key=""
        )
    with pytest.raises(CustomModelExists):
        await store.update_custom_model(alice.id, second.id, name="m")
    assert await store.list_custom_models(alice.id) == [first, second]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("name", "", "name"),
        ("name", "x" * 101, "name"),
        ("model_id", " ", "model_id"),
        ("base_url", "ftp://x", "base_url"),
        ("api_key", "k" * (MAX_FIELD_LENGTH + 1), "api_key"),
        ("description", "d" * (MAX_FIELD_LENGTH + 1), "description"),
        ("context_length", 0, "context_length"),
        ("context_length", True, "context_length"),
        ("owner", 1, "unknown"),
    ],
)
async def test_custom_model_validation(
    store: Store, field: str, value: str | int, match: str
) -> None:
    alice, _ = await store.create_user("alice")
    model = await store.create_custom_model(
        alice.id, name="m", model_id="a", base_url="https://a.example", api_key="k"
    )
    with pytest.raises(ValueError, match=match) as caught:
        await store.update_custom_model(alice.id, model.id, **{field: value})
    if field == "api_key":
        assert str(value) not in str(caught.value)
    assert await store.get_custom_model(alice.id, model.id) == model


async def test_custom_model_for_unknown_user(store: Store) -> None:
    with pytest.raises(UserNotFound):
        await store.create_custom_model(
            424242, name="m", model_id="a", base_url="https://a.example", api_key="k"
        )


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"openai_api_key": "sk-abc\r\nX-Injected: 1"}, "control characters"),
        ({"azure_openai_endpoint": "https://x.example/?q="}, "query"),
        ({"azure_openai_endpoint": "https://user:pw@x.example"}, "credentials"),
        ({"azure_openai_endpoint": "file:///etc/passwd"}, "http"),
    ],
)
async def test_values_that_would_travel_badly_are_refused(
    store: Store, changes: dict[str, str | bool | None], fragment: str
) -> None:
    alice, _ = await store.create_user("alice")
    with pytest.raises(ValueError, match=fragment):
        await store.update_profile(alice.id, changes)


@pytest.mark.parametrize(
    ("base_url", "fragment"),
    [
        ("http://127.0.0.1:9/internal/admin?q=", "query"),
        ("http://127.0.0.1:9/v1#x", "query or a fragment"),
        ("https://me:secret@llm.example/v1", "credentials"),
        ("ftp://llm.example", "http"),
    ],
)
async def test_custom_base_url_is_a_plain_api_base(
    store: Store, base_url: str, fragment: str
) -> None:
    alice, _ = await store.create_user("alice")
    with pytest.raises(ValueError, match=fragment):
        await store.create_custom_model(
            alice.id, name="m", model_id="m", base_url=base_url, api_key=""
        )
