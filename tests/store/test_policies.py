"""Roles, token names and policies in the store, on both backends: the caller a token or a
session stands for comes whole from one lookup, policies round-trip exactly, bad ones are
refused naming the field."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.records import Policy, UserRecord
from chatwire.store.repo import (
    LastAdmin,
    Store,
    TokenNameTaken,
    TokenNotFound,
    UserNotFound,
)
from chatwire.store.web import WebStore

BOT = Policy(
    models=("mistral/*", "anthropic/claude-*"),
    rpm=60,
    tpm=100_000,
    parallel=4,
    budget=Decimal("12.345678"),
    budget_period="day",
)


async def test_the_first_user_is_an_admin(store: Store) -> None:
    alice, _ = await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    carol, _ = await store.create_user("carol", role="admin")
    assert [alice.role, bob.role, carol.role] == ["admin", "member", "admin"]
    assert [u.role for u in await store.list_users()] == ["admin", "member", "admin"]
    with pytest.raises(ValueError, match="role must be one of: admin, member"):
        await store.create_user("dave", role="owner")  # type: ignore[arg-type]


async def test_roles_change_but_the_last_admin_stays(store: Store) -> None:
    await store.create_user("alice")
    await store.create_user("bob")
    with pytest.raises(LastAdmin, match="'alice' is the only admin"):
        await store.set_role("alice", "member")
    assert (await store.set_role("bob", "admin")).role == "admin"
    assert (await store.set_role("alice", "member")).role == "member"
    with pytest.raises(UserNotFound):
        await store.set_role("nobody", "admin")
    bob = await store.get_user("bob")
    assert bob is not None
    assert (await store.get_user_by_id(bob.id)) == bob
    with pytest.raises(LastAdmin):
        await store.set_role(bob.id, "member")


async def test_a_token_lookup_brings_the_whole_caller(store: Store) -> None:
    alice, first = await store.create_user("alice")
    record, token = await store.add_token("alice", name="ci-bot", policy=BOT)
    assert record.policy == BOT
    assert record.name == "ci-bot"

    found = await store.user_for_token(token)
    assert found == UserRecord(
        id=alice.id,
        name="alice",
        role="admin",
        token_id=record.id,
        token_name="ci-bot",
        policy=None,
        token_policy=BOT,
    )
    # The default stands in for a user without a policy of her own; her own wins over it.
    default = await store.change_default_policy({"rpm": 10})
    assert default == Policy(rpm=10)
    plain = await store.user_for_token(first)
    assert plain is not None
    assert plain.policy == Policy(rpm=10)
    assert plain.token_policy is None
    assert plain.token_name is None
    own = await store.change_user_policy(alice.id, {"models": ["openai/*"], "budget": "3"})
    assert own == Policy(models=("openai/*",), budget=Decimal(3))
    found = await store.user_for_token(token)
    assert found is not None
    assert found.policy == own
    assert found.token_policy == BOT
    assert await store.user_policy(alice.id) == own
    assert await store.default_policy() == Policy(rpm=10)

    # A session (no token) has the user's policy alone.
    web = WebStore(store.engine)
    session = await web.create_session(alice.id, timedelta(hours=1))
    assert await web.user_for_session(session) == UserRecord(
        id=alice.id, name="alice", role="admin", policy=own
    )
    assert await store.clear_policy(user_id=alice.id)
    assert not await store.clear_policy(user_id=alice.id)
    by_session = await web.user_for_session(session)
    assert by_session is not None
    assert by_session.policy == Policy(rpm=10)


async def test_policy_changes_are_partial_and_an_empty_one_is_gone(store: Store) -> None:
    await store.create_user("alice")
    record, _ = await store.add_token("alice")
    assert record.policy is None
    changed = await store.change_token_policy(record.id, {"rpm": 5, "budget": Decimal("1.5")})
    assert changed == Policy(rpm=5, budget=Decimal("1.5"))
    changed = await store.change_token_policy(record.id, {"rpm": None, "budget_period": "total"})
    assert changed == Policy(budget=Decimal("1.5"), budget_period="total")
    listed = await store.list_tokens("alice")
    assert listed[1].policy == changed
    assert (await store.get_token(record.id)) == listed[1]
    # No limit left: no policy (a budget period alone limits nothing).
    assert await store.change_token_policy(record.id, {"budget": None}) is None
    assert (await store.get_token(record.id)) is not None
    assert (await store.list_all_tokens())[1].policy is None
    # An empty list of models is a policy: it allows no model.
    assert await store.change_token_policy(record.id, {"models": []}) == Policy(models=())
    with pytest.raises(TokenNotFound):
        await store.change_token_policy(999, {"rpm": 1})
    with pytest.raises(UserNotFound):
        await store.change_user_policy(999, {"rpm": 1})
    with pytest.raises(UserNotFound):
        await store.list_all_tokens(999)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rpm": 0}, "rpm"),
        ({"tpm": -1}, "tpm"),
        ({"parallel": 2**31}, "parallel"),
        ({"rpm": True}, "rpm"),
        ({"rpm": 1.5}, "rpm"),
        ({"budget": "abc"}, "budget"),
        ({"budget": -1}, "budget"),
        ({"budget": "1e9"}, "budget"),
        ({"budget": "0.0000001"}, "budget"),
        ({"budget": 1.5}, "budget"),
        ({"budget_period": "year"}, "budget_period"),
        ({"models": "mistral/*"}, "models"),
        ({"models": [1]}, "models"),
        ({"models": [""]}, "models"),
        ({"models": ["x" * 201]}, "models"),
        ({"models": ["a\x00"]}, "models"),
        ({"models": ["m"] * 101}, "models"),
        ({"rpms": 1}, "rpms"),
    ],
)
async def test_bad_policies_are_refused_naming_the_field(
    store: Store, changes: dict[str, object], field: str
) -> None:
    await store.create_user("alice")
    with pytest.raises(ValueError, match=field):
        await store.change_default_policy(changes)
    assert await store.default_policy() is None


async def test_budgets_keep_every_digit(store: Store) -> None:
    for amount in ("0", "0.000001", "12.5", "99999999.999999", "100"):
        policy = await store.change_default_policy({"budget": amount})
        assert policy is not None
        assert policy.budget == Decimal(amount)
        assert (await store.default_policy()) == policy


async def test_token_names_are_unique_per_user(store: Store, engine: AsyncEngine) -> None:
    await store.create_user("alice")
    await store.create_user("bob")
    await store.add_token("alice", name="ci-bot")
    await store.add_token("bob", name="ci-bot")
    await store.add_token("alice")
    await store.add_token("alice")  # unnamed ones: as many as wanted
    with pytest.raises(TokenNameTaken, match="'alice' has a token named 'ci-bot'"):
        await store.add_token("alice", name="ci-bot")
    with pytest.raises(ValueError, match="token name"):
        await store.add_token("alice", name=" padded")
    with pytest.raises(ValueError, match="rpm"):
        await store.add_token("alice", name="bad", policy=Policy(rpm=0))
    assert [t.name for t in await store.list_tokens("alice")] == [None, "ci-bot", None, None]


async def test_users_listing_shows_their_own_policy(store: Store) -> None:
    await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    await store.change_default_policy({"rpm": 1})
    await store.change_user_policy(bob.id, {"parallel": 2})
    listing = await store.user_listing()
    assert [(u.name, u.role, u.policy) for u in listing] == [
        ("alice", "admin", None),
        ("bob", "member", Policy(parallel=2)),
    ]
    assert [u.name for u in await store.user_listing(bob.id)] == ["bob"]
    assert await store.user_listing(999) == []


async def test_concurrent_changes_make_one_row(store: Store, engine: AsyncEngine) -> None:
    alice, _ = await store.create_user("alice")
    results = await asyncio.gather(
        *(store.change_user_policy(alice.id, {"rpm": n}) for n in range(1, 11)),
        *(store.change_default_policy({"tpm": n}) for n in range(1, 11)),
    )
    assert all(result is not None for result in results)
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM policies"))
    assert count == 2
    own = await store.user_policy(alice.id)
    assert own is not None
    assert own.rpm in range(1, 11)
