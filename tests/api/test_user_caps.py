"""Caps on what one user, or one client address, can make chatwire do: custom models per user
(CHATWIRE_MAX_CUSTOM_MODELS, then 409) and failed bearer tokens per address
(CHATWIRE_AUTH_FAILURES_PER_MINUTE, then 429 with Retry-After before any database lookup)."""

from __future__ import annotations

import openai
import pytest

from chatwire.cli import open_store
from tests.conftest import ServerFactory
from tests.dbproxy import DatabaseProxy

CHAT = "/api/chat/mistral"


def custom(name: str) -> dict[str, str]:
    return {"name": name, "model_id": name, "base_url": "https://example.com/v1"}


async def test_custom_models_past_the_cap_are_a_409_naming_it(make_server: ServerFactory) -> None:
    server = await make_server(max_custom_models=3)
    created = []
    for i in range(3):
        resp = await server.client.post(
            "/api/custom-models", json=custom(f"m{i}"), headers=server.auth
        )
        assert resp.status_code == 201, resp.text
        created.append(resp.json()["id"])
    resp = await server.client.post("/api/custom-models", json=custom("m3"), headers=server.auth)
    assert resp.status_code == 409
    assert "You have 3 custom models" in resp.json()["message"]
    assert "CHATWIRE_MAX_CUSTOM_MODELS" in resp.json()["message"]
    listed = await server.client.get("/api/custom-models", headers=server.auth)
    assert len(listed.json()) == 3
    # Another user has a cap of their own.
    async with open_store(server.settings) as store:
        _, bob = await store.create_user("bob")
    resp = await server.client.post(
        "/api/custom-models", json=custom("m0"), headers={"Authorization": f"Bearer {bob}"}
    )
    assert resp.status_code == 201
    # One deleted, one more fits.
    await server.client.delete(f"/api/custom-models/{created[0]}", headers=server.auth)
    resp = await server.client.post("/api/custom-models", json=custom("m3"), headers=server.auth)
    assert resp.status_code == 201


async def test_failed_tokens_are_throttled_per_address(make_server: ServerFactory) -> None:
    server = await make_server(auth_failures_per_minute=5)
    wrong = {"Authorization": "Bearer not-a-token"}
    for _ in range(5):
        resp = await server.client.post(CHAT, json=server.chat_body(), headers=wrong)
        assert resp.status_code == 401
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=wrong)
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["retry-after"]) <= 12  # one more failure every 12 s
    assert "CHATWIRE_AUTH_FAILURES_PER_MINUTE" in resp.json()["message"]
    resp = await server.client.get("/api/profile", headers=wrong)
    assert resp.status_code == 429
    assert resp.headers["retry-after"]
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="not-a-token", max_retries=0
    ) as client:
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model="mistral-small-latest", messages=[{"role": "user", "content": "Hi"}]
            )
    # Another address (uvicorn takes X-Forwarded-For from loopback) is not held by it.
    elsewhere = {"X-Forwarded-For": "203.0.113.7"}
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=wrong | elsewhere)
    assert resp.status_code == 401
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth | elsewhere)
    assert resp.status_code == 200


async def test_good_tokens_do_not_count(make_server: ServerFactory) -> None:
    server = await make_server(auth_failures_per_minute=2)
    for _ in range(10):
        resp = await server.client.get("/api/profile", headers=server.auth)
        assert resp.status_code == 200


@pytest.mark.postgres
async def test_a_throttled_address_is_refused_before_any_database_lookup(
    make_server: ServerFactory, pg_proxy: tuple[DatabaseProxy, str]
) -> None:
    proxy, url = pg_proxy
    server = await make_server(database_url=url, auth_failures_per_minute=3)
    for i in range(3):
        resp = await server.client.get("/api/profile", headers={"Authorization": f"Bearer x{i}"})
        assert resp.status_code == 401
    # With the database gone, a lookup would be a 503: the throttle answers first.
    await proxy.stop()
    for i in range(3, 20):
        resp = await server.client.get("/api/profile", headers={"Authorization": f"Bearer x{i}"})
        assert resp.status_code == 429
