"""The Responses API's stored replies, through the official openai SDK over TCP against the
fake Mistral: previous_response_id, GET / DELETE / input_items, item references, per user,
failed and incomplete replies as they ended, and the bound on a continued conversation."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import openai
import pytest
from sqlalchemy import text, update

from chatwire.cli import open_store
from chatwire.store.models import ResponseRow, utcnow
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral
from tests.openai_api.test_responses import MODEL, sdk, sent


async def test_previous_response_id_continues_the_conversation(
    server: Running, fake: FakeMistral
) -> None:
    async with sdk(server) as client:
        first = await client.responses.create(model=MODEL, input="My name is Ada")
        second = await client.responses.create(
            model=MODEL, input="What is my name?", previous_response_id=first.id
        )
    assert sent(fake)["messages"] == [
        {"role": "user", "content": "My name is Ada"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.previous_response_id == first.id


async def test_stored_responses_get_delete_and_input_items(server: Running) -> None:
    async with sdk(server) as client:
        first = await client.responses.create(model=MODEL, input="My name is Ada")
        second = await client.responses.create(
            model=MODEL, input="What is my name?", previous_response_id=first.id
        )
        got = await client.responses.retrieve(second.id)
        assert got.id == second.id
        assert got.output_text == second.output_text
        assert got.status == "completed"
        items = await client.responses.input_items.list(second.id, order="asc")
        texts = [item.content[0].text for item in items.data]  # type: ignore[union-attr,index]
        assert texts == ["My name is Ada", first.output_text, "What is my name?"]
        newest = await client.responses.input_items.list(second.id, limit=1)
        assert [item.id for item in newest.data] == [items.data[-1].id]
        assert newest.has_more is True
        await client.responses.delete(second.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(second.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.delete(second.id)


async def test_store_false_keeps_nothing(server: Running) -> None:
    async with sdk(server) as client:
        response = await client.responses.create(model=MODEL, input="Hi", store=False)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(response.id)
        with pytest.raises(openai.NotFoundError) as caught:
            await client.responses.create(model=MODEL, input="Hi", previous_response_id=response.id)
    assert caught.value.body == {
        "message": f"Previous response with id '{response.id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "response_not_found",
    }


async def test_another_users_response_is_not_found(server: Running, fake: FakeMistral) -> None:
    async with open_store(server.settings) as store:
        bob, bob_token = await store.create_user("bob")
        await store.update_profile(bob.id, {"mistral_api_key": fake.api_key})
    async with sdk(server) as client:
        alices = await client.responses.create(model=MODEL, input="A secret")
    asked = len(fake.requests)
    async with sdk(server, bob_token) as client:
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(alices.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.input_items.list(alices.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.delete(alices.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(
                model=MODEL, input="Go on", previous_response_id=alices.id
            )
    assert len(fake.requests) == asked  # refused before any upstream request
    async with sdk(server) as client:
        assert (await client.responses.retrieve(alices.id)).id == alices.id


async def test_a_failure_mid_stream_is_a_failed_response_stored_as_such(server: Running) -> None:
    async with server.client.stream(
        "POST",
        "/v1/responses",
        json={"model": "mistral/fake-drop", "input": "Say hello", "stream": True},
        headers=server.auth,
    ) as resp:
        assert resp.status_code == 200
        body = (await resp.aread()).decode()
    events = [
        json.loads(line.removeprefix("data: "))
        for line in body.splitlines()
        if line.startswith("data: ")
    ]
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert "event: response.failed\n" in body
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == events[-2]["message"]
    stored = await server.client.get(f"/v1/responses/{failed['id']}", headers=server.auth)
    assert stored.json()["status"] == "failed"


async def test_item_references_stand_for_stored_output_items(
    server: Running, fake: FakeMistral
) -> None:
    """As the Vercel AI SDK sends an earlier reply of a stored conversation: by its id."""
    async with sdk(server) as client:
        first = await client.responses.create(model=MODEL, input="My name is Ada")
        [message] = first.output
        assert message.id is not None
        reference: Any = {"type": "item_reference", "id": message.id}
        second = await client.responses.create(
            model=MODEL,
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "My name is Ada"}]},
                reference,
                {"role": "user", "content": [{"type": "input_text", "text": "My name?"}]},
            ],
        )
        items = await client.responses.input_items.list(second.id, order="asc")
        with pytest.raises(openai.NotFoundError) as caught:
            await client.responses.create(
                model=MODEL, input=[{"type": "item_reference", "id": "msg_nothing"}]
            )
    assert sent(fake)["messages"][1] == {"role": "assistant", "content": first.output_text}
    assert items.data[1].id == message.id
    assert caught.value.body == {
        "message": "Item with id 'msg_nothing' not found.",
        "type": "invalid_request_error",
        "param": "input",
        "code": "response_not_found",
    }


async def test_a_conversation_past_the_body_limit_is_a_413(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_body_bytes=3000)
    async with sdk(server) as client:
        first = await client.responses.create(model=MODEL, input="word " * 300)
        with pytest.raises(openai.APIStatusError) as caught:
            await client.responses.create(model=MODEL, input="Go on", previous_response_id=first.id)
    assert caught.value.status_code == 413
    assert "CHATWIRE_MAX_BODY_BYTES" in caught.value.message


async def test_an_incomplete_reply_is_stored_as_such(server: Running) -> None:
    async with sdk(server) as client:
        cut = await client.responses.create(model=MODEL, input="Say hello", max_output_tokens=2)
        stored = await client.responses.retrieve(cut.id)
    assert stored.status == "incomplete"
    assert stored.incomplete_details is not None
    assert stored.incomplete_details.reason == "max_output_tokens"
    assert stored.output_text == cut.output_text
    assert stored.usage == cut.usage


async def test_an_expired_response_is_not_found_before_any_prune(
    server: Running, fake: FakeMistral
) -> None:
    async with sdk(server) as client:
        first = await client.responses.create(model=MODEL, input="My name is Ada")
        age = timedelta(days=server.settings.responses_retention_days, minutes=1)
        async with open_store(server.settings) as store, store.engine.begin() as connection:
            await connection.execute(
                update(ResponseRow)
                .where(ResponseRow.id == first.id)
                .values(created_at=utcnow() - age)
            )
        asked = len(fake.requests)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError) as caught:
            await client.responses.create(
                model=MODEL, input="What is my name?", previous_response_id=first.id
            )
        reference: Any = [{"type": "item_reference", "id": first.output[0].id}]
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model=MODEL, input=reference)
    assert caught.value.body == {
        "message": f"Previous response with id '{first.id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "response_not_found",
    }
    assert len(fake.requests) == asked
    async with open_store(server.settings) as store, store.engine.connect() as connection:
        # Not pruned: refused by its age alone.
        assert await connection.scalar(text("SELECT count(*) FROM responses")) == 1
