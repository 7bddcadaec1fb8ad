"""The policies' models on every front door, over TCP: a model outside a token's or a user's
list is a 403 naming the allowed patterns, in the door's own error shape, before any
upstream is asked; the listings name only the models allowed; a change holds at once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.conftest import Running, ServerFactory, add_user
from tests.fakes.fake_mistral import FakeMistral

SMALL = "mistral-small-latest"
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@pytest.fixture
async def served(make_server: ServerFactory) -> Running:
    # A cache far longer than the tests: what they see at once is the changes' doing.
    return await make_server(cache_ttl=60.0)


async def admin(server: Running, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request of alice's, the first user and so an admin."""
    return await server.client.request(method, f"/api/admin{path}", headers=server.auth, **kwargs)


async def token_with(server: Running, user_id: int, **policy: Any) -> Running:
    resp = await admin(
        server, "POST", "/tokens", json={"user_id": user_id, "name": "ci-bot", "policy": policy}
    )
    assert resp.status_code == 201, resp.text
    return replace(server, token=resp.json()["token"])


def chats(model: str) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """A chat to ``model`` (Mistral's) on each front door: path, body, extra headers."""
    user = [{"role": "user", "content": "Hi"}]
    return [
        ("/api/chat/mistral", {"chatSettings": {"model": model}, "messages": user}, {}),
        ("/v1/chat/completions", {"model": f"mistral/{model}", "messages": user}, {}),
        ("/v1/responses", {"model": f"mistral/{model}", "input": "Hi"}, {}),
        (
            "/v1/messages",
            {"model": f"mistral/{model}", "max_tokens": 16, "messages": user},
            ANTHROPIC,
        ),
    ]


def message_of(path: str, body: dict[str, Any]) -> str:
    """The error's message, wherever the door's shape puts it."""
    if path == "/api/chat/mistral":
        return str(body["message"])
    if path == "/v1/messages":
        assert body["type"] == "error"
        assert body["error"]["type"] == "permission_error"
        return str(body["error"]["message"])
    assert body["error"]["type"] == "permission_error"
    assert body["error"]["code"] == "model_not_allowed"
    return str(body["error"]["message"])


async def test_a_token_outside_its_list_is_refused_on_every_door(
    served: Running, fake: FakeMistral
) -> None:
    bot = await token_with(served, served.user_id, models=["mistral/mistral-large-*", "openai/*"])
    asked = len(fake.requests)
    for path, body, headers in chats(SMALL):
        resp = await bot.client.post(path, json=body, headers={**bot.auth, **headers})
        assert resp.status_code == 403, (path, resp.text)
        message = message_of(path, resp.json())
        assert message == (
            f"Token 'ci-bot' may not use the model 'mistral/{SMALL}'; the models it may use "
            "are: mistral/mistral-large-*, openai/*."
        ), path
    embedding = {"model": "mistral/mistral-embed", "input": "x"}
    resp = await bot.client.post("/v1/embeddings", json=embedding, headers=bot.auth)
    assert resp.status_code == 403, resp.text
    assert "mistral/mistral-embed" in resp.json()["error"]["message"]
    assert len(fake.requests) == asked  # no upstream was asked

    # A model the list allows goes through, on every door.
    for path, body, headers in chats("mistral-large-latest"):
        resp = await bot.client.post(path, json=body, headers={**bot.auth, **headers})
        assert resp.status_code == 200, (path, resp.text)


async def test_the_user_policy_applies_to_every_token_and_the_stricter_decides(
    served: Running, fake: FakeMistral
) -> None:
    bob = await add_user(served, "bob")
    resp = await admin(served, "PATCH", f"/users/{bob.user_id}/policy", json={"models": []})
    assert resp.status_code == 200, resp.text
    path, body, _ = chats(SMALL)[1]
    refused = await bob.client.post(path, json=body, headers=bob.auth)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        f"User 'bob' may not use the model 'mistral/{SMALL}'; it may use no model at all."
    )
    # The token allows Mistral's models, the user only the large ones: small is refused.
    resp = await admin(
        served, "PATCH", f"/users/{bob.user_id}/policy", json={"models": ["mistral/*-large-*"]}
    )
    assert resp.status_code == 200
    bot = await token_with(served, bob.user_id, models=["mistral/*"])
    assert (await bot.client.post(path, json=body, headers=bot.auth)).status_code == 403
    large = {**body, "model": "mistral/mistral-large-latest"}
    assert (await bot.client.post(path, json=large, headers=bot.auth)).status_code == 200

    # The operator's default stands in for a user without a policy of their own.
    resp = await admin(served, "DELETE", f"/users/{bob.user_id}/policy")
    assert resp.status_code == 204
    assert (await bob.client.post(path, json=body, headers=bob.auth)).status_code == 200
    resp = await admin(served, "PATCH", "/policies/default", json={"models": ["openai/*"]})
    assert resp.status_code == 200
    refused = await bob.client.post(path, json=body, headers=bob.auth)
    assert refused.status_code == 403
    assert "User 'bob'" in refused.json()["error"]["message"]
    assert "openai/*" in refused.json()["error"]["message"]


async def test_the_listings_name_only_the_allowed_models(served: Running) -> None:
    before = await served.client.get("/v1/models", headers=served.auth)
    assert f"mistral/{SMALL}" in {m["id"] for m in before.json()["data"]}

    bot = await token_with(served, served.user_id, models=["mistral/mistral-large-*"])
    listed = await bot.client.get("/v1/models", headers=bot.auth)
    assert listed.status_code == 200
    names = {m["id"] for m in listed.json()["data"]}
    assert names == {"mistral/mistral-large-latest"}
    cards = await bot.client.get("/v1/models", headers={**bot.auth, **ANTHROPIC})
    assert {card["id"] for card in cards.json()["data"]} == names
    page = await bot.client.get("/api/models", headers=bot.auth)
    assert {m["modelId"] for group in page.json().values() for m in group} == {
        "mistral-large-latest"
    }
    one = await bot.client.get(f"/v1/models/mistral/{SMALL}", headers=bot.auth)
    assert one.status_code == 403


async def test_a_change_holds_at_once_despite_the_cache(served: Running) -> None:
    bob = await add_user(served, "bob")
    path, body, _ = chats(SMALL)[1]
    assert (await bob.client.post(path, json=body, headers=bob.auth)).status_code == 200
    resp = await admin(served, "PATCH", f"/users/{bob.user_id}/policy", json={"models": []})
    assert resp.status_code == 200
    assert (await bob.client.post(path, json=body, headers=bob.auth)).status_code == 403
    resp = await admin(served, "PATCH", f"/users/{bob.user_id}/policy", json={"models": None})
    assert resp.status_code == 200
    assert resp.json()["policy"] is None  # nothing left: the row is gone
    assert (await bob.client.post(path, json=body, headers=bob.auth)).status_code == 200

    # Revoked by an admin, by its owner: refused at once, not after the cache's minute.
    bot = await token_with(served, bob.user_id)
    assert (await bot.client.get("/api/tokens", headers=bot.auth)).status_code == 200
    token_id = (await bot.client.get("/api/tokens", headers=bot.auth)).json()[-1]["id"]
    assert (await admin(served, "DELETE", f"/tokens/{token_id}")).status_code == 204
    assert (await bot.client.get("/api/tokens", headers=bot.auth)).status_code == 401
    own = (await bob.client.get("/api/tokens", headers=bob.auth)).json()[0]["id"]
    assert (await bob.client.delete(f"/api/tokens/{own}", headers=bob.auth)).status_code == 204
    assert (await bob.client.get("/api/tokens", headers=bob.auth)).status_code == 401
