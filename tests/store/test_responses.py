"""Stored Responses API replies on both backends: kept per user, deleted with their user,
and pruned in batches once past the retention period."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.cli import open_store, prepare
from chatwire.core.config import Settings
from chatwire.providers.registry import credential_fields
from chatwire.services import Services
from chatwire.store.models import ResponseRow, utcnow
from chatwire.store.repo import Store
from chatwire.store.responses import ResponseStore


def body(response_id: str, status: str = "completed") -> dict[str, object]:
    return {"id": response_id, "object": "response", "status": status, "output": []}


async def test_kept_per_user(engine: AsyncEngine, store: Store) -> None:
    alice, _ = await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    responses = ResponseStore(engine)
    items = [{"type": "message", "id": "msg_1", "role": "user", "content": []}]
    await responses.save(alice.id, body("resp_a", "incomplete"), items)
    got = await responses.get(alice.id, "resp_a")
    assert got is not None
    assert (got.status, got.body, got.input) == ("incomplete", body("resp_a", "incomplete"), items)
    assert await responses.get(bob.id, "resp_a") is None
    assert await responses.get(alice.id, "resp_" + "x" * 100) is None
    assert await responses.delete(bob.id, "resp_a") is False
    assert await responses.delete(alice.id, "resp_a") is True
    assert await responses.get(alice.id, "resp_a") is None


async def test_past_the_retention_not_found_before_any_prune(
    engine: AsyncEngine, store: Store
) -> None:
    alice, _ = await store.create_user("alice")
    responses = ResponseStore(engine, retention_days=30)
    for name in ("old", "new"):
        output = [{"type": "message", "id": f"msg_{name}", "role": "assistant", "content": []}]
        await responses.save(alice.id, {**body(f"resp_{name}"), "output": output}, [])
    async with engine.begin() as connection:
        await connection.execute(
            update(ResponseRow)
            .where(ResponseRow.id == "resp_old")
            .values(created_at=utcnow() - timedelta(days=30, minutes=1))
        )
    assert await responses.get(alice.id, "resp_old") is None
    assert await responses.get(alice.id, "resp_new") is not None
    assert list(await responses.items(alice.id, ["msg_old", "msg_new"])) == ["msg_new"]
    assert await responses.delete(alice.id, "resp_old") is False
    # A retention of 0 keeps every row until it is deleted.
    assert await ResponseStore(engine).get(alice.id, "resp_old") is not None
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM responses")) == 2


async def test_deleted_with_their_user(engine: AsyncEngine, store: Store) -> None:
    alice, _ = await store.create_user("alice")
    await ResponseStore(engine).save(alice.id, body("resp_a"), [])
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM users"))
        assert await connection.scalar(text("SELECT count(*) FROM responses")) == 0


async def test_pruned_in_batches_past_the_retention(engine: AsyncEngine, store: Store) -> None:
    alice, _ = await store.create_user("alice")
    responses = ResponseStore(engine)
    for number in range(7):
        await responses.save(alice.id, body(f"resp_old{number}"), [])
    await responses.save(alice.id, body("resp_new"), [])
    async with engine.begin() as connection:
        await connection.execute(
            update(ResponseRow)
            .where(ResponseRow.id.like("resp_old%"))
            .values(created_at=utcnow() - timedelta(days=31))
        )
    assert await responses.prune(30, batch=3) == 7
    assert await responses.get(alice.id, "resp_new") is not None
    assert await responses.prune(30, batch=3) == 0
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM responses")) == 1


async def test_the_services_prune_at_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None, secret_key=None)
    await asyncio.to_thread(prepare, settings)
    async with open_store(settings) as store:
        alice, _ = await store.create_user("alice")
        responses = ResponseStore(store.engine)
        await responses.save(alice.id, body("resp_old"), [])
        await responses.save(alice.id, body("resp_new"), [])
        async with store.engine.begin() as connection:
            await connection.execute(
                update(ResponseRow)
                .where(ResponseRow.id == "resp_old")
                .values(created_at=utcnow() - timedelta(days=31))
            )
    services = await Services.start(settings, credential_fields())
    try:
        for _ in range(200):
            if await services.responses.get(alice.id, "resp_old") is None:
                break
            await asyncio.sleep(0.01)
        assert await services.responses.get(alice.id, "resp_old") is None
        assert await services.responses.get(alice.id, "resp_new") is not None
    finally:
        await services.close()
    assert services.pruner is not None
    assert services.pruner.cancelled()


async def test_output_items_by_id_per_user_and_gone_with_their_response(
    engine: AsyncEngine, store: Store
) -> None:
    alice, _ = await store.create_user("alice")
    bob, _ = await store.create_user("bob")
    responses = ResponseStore(engine)
    item = {"id": "msg_a", "type": "message", "role": "assistant", "content": []}
    await responses.save(alice.id, {**body("resp_a"), "output": [item]}, [])
    assert await responses.items(alice.id, ["msg_a", "msg_b"]) == {"msg_a": item}
    assert await responses.items(bob.id, ["msg_a"]) == {}
    assert await responses.delete(alice.id, "resp_a")
    assert await responses.items(alice.id, ["msg_a"]) == {}
