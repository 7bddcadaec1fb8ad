"""/api/chats and /api/tokens: each user's own, created, read, changed and deleted."""

from __future__ import annotations

import json

from chatwire.cli import open_store
from tests.conftest import Running, ServerFactory

CHATS = "/api/chats"


async def test_a_chat_is_kept_changed_and_deleted(server: Running) -> None:
    made = await server.client.post(
        CHATS,
        json={
            "title": "Lighthouses",
            "model": "mistral/mistral-small-latest",
            "messages": [
                {"role": "user", "content": "Tell me", "images": ["data:image/png;base64,AAAA"]},
                {"role": "assistant", "content": "Gladly."},
            ],
        },
        headers=server.auth,
    )
    assert made.status_code == 201
    chat = made.json()
    assert chat["messages"][0]["images"] == ["data:image/png;base64,AAAA"]
    listed = (await server.client.get(CHATS, headers=server.auth)).json()
    assert [(c["id"], c["title"]) for c in listed] == [(chat["id"], "Lighthouses")]
    assert "messages" not in listed[0]
    changed = await server.client.patch(
        f"{CHATS}/{chat['id']}", json={"title": "Renamed"}, headers=server.auth
    )
    assert changed.json()["title"] == "Renamed"
    assert changed.json()["messages"] == chat["messages"]
    deleted = await server.client.delete(f"{CHATS}/{chat['id']}", headers=server.auth)
    assert deleted.status_code == 204
    gone = await server.client.get(f"{CHATS}/{chat['id']}", headers=server.auth)
    assert gone.status_code == 404
    assert gone.json()["message"] == f"You have no chat with id {chat['id']} (GET /api/chats)."


async def test_another_users_chats_cannot_be_seen_or_touched(server: Running) -> None:
    made = await server.client.post(
        CHATS, json={"title": "Alice's", "model": "mistral/m"}, headers=server.auth
    )
    chat_id = made.json()["id"]
    async with open_store(server.settings) as store:
        _, bob_token = await store.create_user("bob")
    bob = {"Authorization": f"Bearer {bob_token}"}
    assert (await server.client.get(CHATS, headers=bob)).json() == []
    for method in ("GET", "DELETE"):
        answer = await server.client.request(method, f"{CHATS}/{chat_id}", headers=bob)
        assert answer.status_code == 404
    answer = await server.client.patch(f"{CHATS}/{chat_id}", json={"title": "x"}, headers=bob)
    assert answer.status_code == 404
    assert (await server.client.get(f"{CHATS}/{chat_id}", headers=server.auth)).status_code == 200


async def test_bad_chats_are_refused_with_a_message(server: Running) -> None:
    for body, words in [
        ({"title": "", "model": "m"}, "title"),
        ({"title": "t", "model": "m", "messages": [{"role": "system", "content": "x"}]}, "role"),
        (
            {
                "title": "t",
                "model": "m",
                "messages": [{"role": "user", "content": "x", "images": ["javascript:alert(1)"]}],
            },
            "images",
        ),
        ({"title": "t", "model": "m", "extra": 1}, "extra"),
        ({"title": "a\u0000b", "model": "m"}, "control characters"),
        ({"title": "t", "model": "\ud800"}, "model"),
        (
            {"title": "t", "model": "m", "messages": [{"role": "user", "content": "\ud800"}]},
            "surrogates",
        ),
    ]:
        # As JSON escapes: the client's own encoder refuses a lone surrogate.
        answer = await server.client.post(
            CHATS,
            content=json.dumps(body),
            headers={**server.auth, "Content-Type": "application/json"},
        )
        assert answer.status_code == 400, body
        assert words in answer.json()["message"]


async def test_any_text_in_a_message_is_kept_as_sent(server: Running) -> None:
    text = "nul \u0000, emoji \U0001f600, <script>"
    body = {"title": "t", "model": "m", "messages": [{"role": "user", "content": text}]}
    made = await server.client.post(CHATS, json=body, headers=server.auth)
    assert made.status_code == 201, made.text
    read = await server.client.get(f"{CHATS}/{made.json()['id']}", headers=server.auth)
    assert json.loads(read.content)["messages"][0]["content"] == text


async def test_chats_past_the_cap_are_refused(make_server: ServerFactory) -> None:
    server = await make_server(max_chats=1)
    body = {"title": "t", "model": "m"}
    assert (await server.client.post(CHATS, json=body, headers=server.auth)).status_code == 201
    answer = await server.client.post(CHATS, json=body, headers=server.auth)
    assert answer.status_code == 409
    assert "CHATWIRE_MAX_CHATS" in answer.json()["message"]


async def test_tokens_are_listed_created_once_and_revoked(server: Running) -> None:
    listed = (await server.client.get("/api/tokens", headers=server.auth)).json()
    assert [(t["id"], t["revoked_at"]) for t in listed] == [(1, None)]
    made = await server.client.post("/api/tokens", headers=server.auth)
    assert made.status_code == 201
    token = made.json()["token"]
    new = {"Authorization": f"Bearer {token}"}
    assert (await server.client.get("/api/models", headers=new)).status_code == 200
    listed = (await server.client.get("/api/tokens", headers=server.auth)).json()
    assert [t["id"] for t in listed] == [1, 2]
    assert token not in str(listed)
    assert (await server.client.delete("/api/tokens/2", headers=server.auth)).status_code == 204
    again = await server.client.delete("/api/tokens/2", headers=server.auth)
    assert again.status_code == 404
    async with open_store(server.settings) as store:
        assert await store.user_for_token(token) is None


async def test_another_users_token_cannot_be_revoked(server: Running) -> None:
    async with open_store(server.settings) as store:
        _, bob_token = await store.create_user("bob")
    bob = {"Authorization": f"Bearer {bob_token}"}
    answer = await server.client.delete("/api/tokens/1", headers=bob)
    assert answer.status_code == 404
    assert (await server.client.get("/api/models", headers=server.auth)).status_code == 200
