"""The web pages' records on SQLite and PostgreSQL: sessions (hashed, expiring, ended,
one-time links) and chats, each user's own."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.core.security import hash_token
from chatwire.store.models import WebChat, WebSession
from chatwire.store.repo import Store
from chatwire.store.web import WebStore

DAY = timedelta(days=1)


async def test_a_session_finds_its_user_until_it_ends(store: Store, engine: AsyncEngine) -> None:
    web = WebStore(engine)
    alice, _ = await store.create_user("alice")
    session = await web.create_session(alice.id, DAY)
    assert await web.user_for_session(session) == alice
    async with engine.connect() as connection:
        stored = (await connection.execute(select(WebSession.token_hash))).scalars().all()
    assert stored == [hash_token(session)]
    assert await web.end_session(session) is True
    assert await web.user_for_session(session) is None
    assert await web.end_session(session) is False


async def test_an_expired_session_finds_no_one_and_is_cleared_later(
    store: Store, engine: AsyncEngine
) -> None:
    web = WebStore(engine)
    alice, _ = await store.create_user("alice")
    old = await web.create_session(alice.id, -DAY)
    assert await web.user_for_session(old) is None
    assert await web.user_for_session("") is None
    await web.create_session(alice.id, DAY)  # clears the ones past their time
    async with engine.connect() as connection:
        hashes = (await connection.execute(select(WebSession.token_hash))).scalars().all()
    assert hash_token(old) not in hashes
    assert len(hashes) == 1


async def test_a_link_signs_in_once(store: Store, engine: AsyncEngine) -> None:
    web = WebStore(engine)
    alice, _ = await store.create_user("alice")
    code = await web.create_session(alice.id, DAY)
    assert await web.redeem_link(code) == alice
    assert await web.redeem_link(code) is None


async def test_chats_are_their_users_own(store: Store, engine: AsyncEngine) -> None:
    web = WebStore(engine)
    alice, _ = await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    first = await web.create_chat(alice.id, "First", "mistral/m", "[]")
    second = await web.create_chat(alice.id, "Second", "mistral/m", '[{"role": "user"}]')
    assert [c.title for c in await web.list_chats(alice.id)] == ["Second", "First"]
    assert await web.list_chats(bob.id) == []
    assert await web.get_chat(bob.id, first.id) is None
    assert await web.update_chat(bob.id, first.id, title="Bob's") is None
    assert await web.delete_chat(bob.id, first.id) is False

    changed = await web.update_chat(alice.id, first.id, title="Renamed")
    assert changed is not None
    assert changed.updated_at >= second.updated_at
    assert [c.title for c in await web.list_chats(alice.id)] == ["Renamed", "Second"]
    assert await web.delete_chat(alice.id, first.id) is True
    assert [c.id for c in await web.list_chats(alice.id)] == [second.id]
    found = await web.get_chat(alice.id, second.id)
    assert found is not None
    assert found.messages == '[{"role": "user"}]'
    async with engine.connect() as connection:
        owners = (await connection.execute(select(WebChat.user_id))).scalars().all()
    assert owners == [alice.id]
