"""/api/custom-models and the custom chat route, against a real OpenAI-compatible fake."""

from __future__ import annotations

from typing import Any

from tests.conftest import FAKE_KEY, Running
from tests.fakes.fake_mistral import FakeMistral

SECRET = "sk-custom-0123456789abcdef"


async def add_model(server: Running, fake: FakeMistral, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "My server",
        "model_id": "mistral-small-latest",
        "base_url": fake.base_url,
        "api_key": FAKE_KEY,
        "context_length": 8192,
        **fields,
    }
    resp = await server.client.post("/api/custom-models", json=body, headers=server.auth)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def test_crud_round_trip_with_masked_keys(server: Running, fake: FakeMistral) -> None:
    created = await add_model(server, fake, api_key=SECRET, description="local vLLM")
    assert created["api_key"] == "sk-...cdef"
    assert created["context_length"] == 8192
    listed = await server.client.get("/api/custom-models", headers=server.auth)
    assert [m["id"] for m in listed.json()] == [created["id"]]
    assert SECRET not in listed.text

    patched = await server.client.patch(
        f"/api/custom-models/{created['id']}", json={"context_length": 4096}, headers=server.auth
    )
    assert patched.status_code == 200
    assert patched.json()["context_length"] == 4096
    assert patched.json()["description"] == "local vLLM"

    gone = await server.client.delete(f"/api/custom-models/{created['id']}", headers=server.auth)
    assert gone.status_code == 204
    again = await server.client.delete(f"/api/custom-models/{created['id']}", headers=server.auth)
    assert again.status_code == 404
    assert "no custom model" in again.json()["message"]


async def test_bad_records_are_400(server: Running, fake: FakeMistral) -> None:
    for body, fragment in [
        ({"name": "x", "model_id": "m", "base_url": "ftp://nope.example"}, "base_url"),
        ({"name": "", "model_id": "m", "base_url": fake.base_url}, "name"),
        (
            {"name": "x", "model_id": "m", "base_url": fake.base_url, "context_length": 0},
            "context_length",
        ),
        ({"name": "x", "model_id": "m", "base_url": fake.base_url, "extra": 1}, "extra"),
    ]:
        resp = await server.client.post("/api/custom-models", json=body, headers=server.auth)
        assert resp.status_code == 400, (body, resp.text)
        assert fragment in resp.json()["message"]


async def test_custom_route_uses_the_record_with_its_limits(
    server: Running, fake: FakeMistral
) -> None:
    created = await add_model(server, fake, context_length=8192)
    body = {**server.chat_body("Hi there"), "customModelId": created["id"]}
    resp = await server.client.post("/api/chat/custom", json=body, headers=server.auth)
    assert resp.status_code == 200
    assert resp.text == fake.expected_reply(body["messages"])
    sent = fake.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.json["model"] == "mistral-small-latest"
    # chatbot-ui sent no max_tokens here; chatwire leaves the prompt room and gives the rest.
    assert 7000 < sent.json["max_tokens"] < 8192


async def test_custom_route_errors(server: Running, fake: FakeMistral) -> None:
    missing = await server.client.post(
        "/api/chat/custom", json={**server.chat_body(), "customModelId": "999"}, headers=server.auth
    )
    assert missing.status_code == 400
    assert "Custom model not found" in missing.json()["message"]
    wrong_key = await add_model(server, fake, name="bad key", api_key="wrong-key-123456789")
    resp = await server.client.post(
        "/api/chat/custom",
        json={**server.chat_body(), "customModelId": wrong_key["id"]},
        headers=server.auth,
    )
    assert resp.status_code == 401
    assert resp.json()["message"] == (
        "The custom model's server refused its API key. "
        "Please fix the key in the custom model's settings."
    )


async def test_another_users_record_is_invisible(server: Running, fake: FakeMistral) -> None:
    from chatwire.cli import open_store

    created = await add_model(server, fake)
    async with open_store(server.settings) as store:
        _, bob_token = await store.create_user("bob")
    bob = {"Authorization": f"Bearer {bob_token}"}
    assert (await server.client.get("/api/custom-models", headers=bob)).json() == []
    resp = await server.client.post(
        "/api/chat/custom", json={**server.chat_body(), "customModelId": created["id"]}, headers=bob
    )
    assert resp.status_code == 400
    patched = await server.client.patch(
        f"/api/custom-models/{created['id']}", json={"name": "mine"}, headers=bob
    )
    assert patched.status_code == 404
