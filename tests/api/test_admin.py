"""/api/admin over TCP: an admin manages users, roles, tokens and policies; anyone else gets a
403 naming their role; bad input a 400 naming the field."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.conftest import Running, add_user


async def admin(server: Running, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request of alice's: the first user, so an admin."""
    return await server.client.request(method, f"/api/admin{path}", headers=server.auth, **kwargs)


ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/users", None),
    ("POST", "/users", {"name": "mallory"}),
    ("GET", "/users/1", None),
    ("PATCH", "/users/2", {"role": "admin"}),
    ("PATCH", "/users/2/policy", {"rpm": 1000}),
    ("DELETE", "/users/1/policy", None),
    ("GET", "/tokens", None),
    ("POST", "/tokens", {"user_id": 2}),
    ("DELETE", "/tokens/1", None),
    ("PATCH", "/tokens/1/policy", {"rpm": 1}),
    ("DELETE", "/tokens/1/policy", None),
    ("GET", "/policies/default", None),
    ("PATCH", "/policies/default", {"models": []}),
    ("DELETE", "/policies/default", None),
]


async def test_only_admins_may(server: Running) -> None:
    bob = await add_user(server, "bob")
    for method, path, body in ROUTES:
        resp = await bob.client.request(method, f"/api/admin{path}", headers=bob.auth, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["message"].startswith(
            "Only admins may use /api/admin; 'bob' is a member"
        )
        anonymous = await bob.client.request(method, f"/api/admin{path}", json=body)
        assert anonymous.status_code == 401, (method, path)
    # Nothing changed: alice is still the only admin, bob's token still works, no default.
    users = (await admin(server, "GET", "/users")).json()
    assert [(u["name"], u["role"], u["policy"]) for u in users] == [
        ("alice", "admin", None),
        ("bob", "member", None),
    ]
    assert (await admin(server, "GET", "/policies/default")).json() == {"policy": None}
    assert (await bob.client.get("/api/tokens", headers=bob.auth)).status_code == 200


async def test_an_admin_manages_users_and_roles(server: Running) -> None:
    created = await admin(server, "POST", "/users", json={"name": "carol"})
    assert created.status_code == 201, created.text
    carol = created.json()
    assert carol["user"]["name"] == "carol"
    assert carol["user"]["role"] == "member"
    assert carol["user"]["policy"] is None
    token = carol["token"]
    mine = await server.client.get("/api/tokens", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    carol_id = carol["user"]["id"]

    promoted = await admin(server, "PATCH", f"/users/{carol_id}", json={"role": "admin"})
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    # At once: carol may use the admin API now, and make alice a member.
    as_carol = replace(server, token=token)
    demoted = await admin(as_carol, "PATCH", f"/users/{server.user_id}", json={"role": "member"})
    assert demoted.json()["role"] == "member"
    assert (await admin(server, "GET", "/users")).status_code == 403
    # The only admin stays one.
    last = await admin(as_carol, "PATCH", f"/users/{carol_id}", json={"role": "member"})
    assert last.status_code == 409
    assert "'carol' is the only admin" in last.json()["message"]

    limited = await admin(
        as_carol,
        "PATCH",
        f"/users/{server.user_id}/policy",
        json={"rpm": 60, "budget": "12.50", "budget_period": "week"},
    )
    assert limited.status_code == 200, limited.text
    assert limited.json()["policy"] == {
        "models": None,
        "rpm": 60,
        "tpm": None,
        "parallel": None,
        "budget": "12.5",
        "budget_period": "week",
    }
    # Only the fields given change; null clears one.
    changed = await admin(
        as_carol, "PATCH", f"/users/{server.user_id}/policy", json={"rpm": None, "tpm": 9000}
    )
    assert changed.json()["policy"]["rpm"] is None
    assert changed.json()["policy"]["tpm"] == 9000
    assert changed.json()["policy"]["budget"] == "12.5"
    one = await admin(as_carol, "GET", f"/users/{server.user_id}")
    assert one.json() == changed.json()
    cleared = await admin(as_carol, "DELETE", f"/users/{server.user_id}/policy")
    assert cleared.status_code == 204
    assert (await admin(as_carol, "GET", f"/users/{server.user_id}")).json()["policy"] is None


async def test_an_admin_manages_tokens_and_the_default(server: Running) -> None:
    bob = await add_user(server, "bob")
    created = await admin(
        server,
        "POST",
        "/tokens",
        json={
            "user_id": bob.user_id,
            "name": "ci-bot",
            "policy": {"models": ["mistral/*"], "rpm": 60, "budget": 5},
        },
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    record = answer["record"]
    assert record["user"] == "bob"
    assert record["user_id"] == bob.user_id
    assert record["name"] == "ci-bot"
    assert record["revoked_at"] is None
    assert record["policy"]["models"] == ["mistral/*"]
    assert record["policy"]["budget"] == "5"
    assert record["policy"]["budget_period"] == "month"
    bot = replace(bob, token=answer["token"])
    # The owner sees its name and policy, never its value.
    own = (await bot.client.get("/api/tokens", headers=bot.auth)).json()
    assert [(t["name"], t["policy"] is not None) for t in own] == [(None, False), ("ci-bot", True)]
    assert answer["token"] not in str(own)

    everyone = (await admin(server, "GET", "/tokens")).json()
    assert [t["user"] for t in everyone] == ["alice", "bob", "bob"]
    bobs = (await admin(server, "GET", f"/tokens?user_id={bob.user_id}")).json()
    assert [t["id"] for t in bobs] == [t["id"] for t in everyone[1:]]
    assert answer["token"] not in str(everyone)
    nobody = await admin(server, "GET", "/tokens?user_id=99")
    assert nobody.status_code == 404

    changed = await admin(server, "PATCH", f"/tokens/{record['id']}/policy", json={"rpm": 5})
    assert changed.status_code == 200
    assert changed.json()["policy"]["rpm"] == 5
    assert changed.json()["policy"]["models"] == ["mistral/*"]
    assert (await admin(server, "DELETE", f"/tokens/{record['id']}/policy")).status_code == 204
    assert (await admin(server, "GET", "/tokens")).json()[2]["policy"] is None
    assert (await admin(server, "DELETE", f"/tokens/{record['id']}")).status_code == 204
    assert (await bot.client.get("/api/tokens", headers=bot.auth)).status_code == 401
    again = await admin(server, "DELETE", f"/tokens/{record['id']}")
    assert again.status_code == 404
    assert (await admin(server, "GET", "/tokens")).json()[2]["revoked_at"] is not None

    default = await admin(server, "PATCH", "/policies/default", json={"parallel": 2})
    assert default.status_code == 200
    assert default.json()["policy"]["parallel"] == 2
    assert (await admin(server, "GET", "/policies/default")).json() == default.json()
    assert (await admin(server, "DELETE", "/policies/default")).status_code == 204
    assert (await admin(server, "GET", "/policies/default")).json() == {"policy": None}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "phrases"),
    [
        ("PATCH", "/policies/default", {"rpm": 0}, 400, ["rpm", "greater than or equal to 1"]),
        ("PATCH", "/policies/default", {"tpm": "many"}, 400, ["tpm"]),
        ("PATCH", "/policies/default", {"parallel": 2**31}, 400, ["parallel"]),
        ("PATCH", "/policies/default", {"budget": "lots"}, 400, ["budget"]),
        ("PATCH", "/policies/default", {"budget": -1}, 400, ["budget"]),
        ("PATCH", "/policies/default", {"budget": "0.0000001"}, 400, ["budget"]),
        ("PATCH", "/policies/default", {"budget_period": "year"}, 400, ["budget_period"]),
        ("PATCH", "/policies/default", {"models": "mistral/*"}, 400, ["models"]),
        ("PATCH", "/policies/default", {"models": [""]}, 400, ["models"]),
        ("PATCH", "/policies/default", {"models": ["x" * 201]}, 400, ["models"]),
        ("PATCH", "/policies/default", {"models": [" "]}, 400, ["models", "blank"]),
        ("PATCH", "/policies/default", {"models": ["a\nb"]}, 400, ["models"]),
        ("PATCH", "/policies/default", {"rpms": 5}, 400, ["rpms"]),
        ("PATCH", "/users/2", {"role": "owner"}, 400, ["role"]),
        ("PATCH", "/users/99", {"role": "admin"}, 404, ["no user with id 99"]),
        ("PATCH", "/users/99/policy", {"rpm": 1}, 404, ["no user with id 99"]),
        ("PATCH", "/users/0/policy", {"rpm": 1}, 400, ["user_id"]),
        ("POST", "/users", {"name": "alice"}, 409, ["'alice' exists already"]),
        ("POST", "/users", {"name": " padded"}, 400, ["name", "whitespace"]),
        ("POST", "/users", {}, 400, ["name"]),
        ("POST", "/tokens", {"user_id": 99}, 404, ["no user with id 99"]),
        ("POST", "/tokens", {"user_id": 1, "name": ""}, 400, ["name"]),
        ("POST", "/tokens", {"user_id": 1, "policy": {"rpm": -5}}, 400, ["policy.rpm"]),
        ("PATCH", "/tokens/99/policy", {"rpm": 1}, 404, ["no token with id 99"]),
        ("DELETE", "/tokens/99", None, 404, ["no active token with id 99"]),
    ],
)
async def test_bad_input_names_the_field(
    server: Running,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    phrases: list[str],
) -> None:
    await add_user(server, "bob")
    resp = await admin(server, method, path, json=body)
    assert resp.status_code == status, resp.text
    message = resp.json()["message"]
    for phrase in phrases:
        assert phrase in message, message
    # Nothing was kept.
    assert (await admin(server, "GET", "/policies/default")).json() == {"policy": None}


async def test_a_token_name_is_unique_per_user(server: Running) -> None:
    bob = await add_user(server, "bob")
    for user_id in (server.user_id, bob.user_id):
        body = {"user_id": user_id, "name": "ci-bot"}
        assert (await admin(server, "POST", "/tokens", json=body)).status_code == 201
    again = await admin(server, "POST", "/tokens", json={"user_id": bob.user_id, "name": "ci-bot"})
    assert again.status_code == 409
    assert again.json()["message"] == "name: 'bob' has a token named 'ci-bot' already."
