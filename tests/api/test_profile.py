"""GET/PATCH /api/profile: keys masked on the way out, encrypted at rest, per user."""

from __future__ import annotations

from sqlalchemy import text

from chatwire.cli import open_store
from chatwire.providers.registry import credential_fields
from chatwire.store.records import CredentialField
from tests.conftest import FAKE_KEY, Running, ServerFactory

SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz-7890"


async def test_profile_masks_stored_keys(server: Running) -> None:
    resp = await server.client.get("/api/profile", headers=server.auth)
    assert resp.status_code == 200
    profile = resp.json()
    assert profile["username"] == "alice"
    assert profile["mistral_api_key"] == f"{FAKE_KEY[:3]}...{FAKE_KEY[-4:]}"
    assert FAKE_KEY not in resp.text
    assert profile["openai_api_key"] is None
    assert profile["use_azure_openai"] is False


async def test_patch_sets_and_clears_keys_without_echoing_them(server: Running) -> None:
    resp = await server.client.patch(
        "/api/profile",
        json={
            "openai_api_key": SECRET,
            "azure_openai_endpoint": "https://x.openai.azure.com",
            "use_azure_openai": True,
        },
        headers=server.auth,
    )
    assert resp.status_code == 200
    assert SECRET not in resp.text
    body = resp.json()
    assert body["openai_api_key"] == "sk-...7890"
    assert body["azure_openai_endpoint"] == "https://x.openai.azure.com"
    assert body["use_azure_openai"] is True
    assert body["mistral_api_key"] is not None  # untouched fields are kept

    resp = await server.client.patch(
        "/api/profile", json={"openai_api_key": None, "mistral_api_key": ""}, headers=server.auth
    )
    assert resp.status_code == 200
    assert resp.json()["openai_api_key"] is None
    assert resp.json()["mistral_api_key"] is None
    assert resp.json()["azure_openai_endpoint"] == "https://x.openai.azure.com"


async def stored_values(server: Running) -> dict[str, str]:
    async with open_store(server.settings) as store, store.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT field, value FROM credentials WHERE user_id = :u"), {"u": server.user_id}
        )
        return {str(row.field): str(row.value) for row in rows}


async def test_raw_database_column_never_holds_the_key(server: Running) -> None:
    await server.client.patch("/api/profile", json={"openai_api_key": SECRET}, headers=server.auth)
    row = await stored_values(server)
    assert row["openai_api_key"]
    assert SECRET not in row["openai_api_key"]
    assert row["mistral_api_key"]
    assert FAKE_KEY not in row["mistral_api_key"]
    db_bytes = (server.settings.data_dir / "chatwire.db").read_bytes()
    assert SECRET.encode() not in db_bytes


async def test_bad_updates_are_400_and_change_nothing(server: Running) -> None:
    for body, fragment in [
        ({"openai_api_key": "x" * 1001}, "openai_api_key"),
        ({"not_a_field": "x"}, "not_a_field"),
        ({"use_azure_openai": "maybe"}, "use_azure_openai"),
    ]:
        resp = await server.client.patch("/api/profile", json=body, headers=server.auth)
        assert resp.status_code == 400, body
        assert fragment in resp.json()["message"]
    resp = await server.client.get("/api/profile", headers=server.auth)
    assert resp.json()["openai_api_key"] is None


async def test_a_stored_key_change_applies_to_the_next_chat(server: Running) -> None:
    await server.client.patch(
        "/api/profile", json={"mistral_api_key": "wrong-0123456789"}, headers=server.auth
    )
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert resp.status_code == 401
    await server.client.patch(
        "/api/profile", json={"mistral_api_key": FAKE_KEY}, headers=server.auth
    )
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert resp.status_code == 200


async def test_profile_needs_a_token(server: Running) -> None:
    resp = await server.client.get("/api/profile")
    assert resp.status_code == 401
    assert "Authorization: Bearer" in resp.json()["message"]
    resp = await server.client.patch("/api/profile", json={"openai_api_key": "x"})
    assert resp.status_code == 401


async def test_each_user_sees_only_their_own_profile(make_server: ServerFactory) -> None:
    server = await make_server()
    async with open_store(server.settings) as store:
        _bob, bob_token = await store.create_user("bob")
    bob_auth = {"Authorization": f"Bearer {bob_token}"}
    resp = await server.client.get("/api/profile", headers=bob_auth)
    assert resp.json()["username"] == "bob"
    assert resp.json()["mistral_api_key"] is None
    await server.client.patch("/api/profile", json={"groq_api_key": SECRET}, headers=bob_auth)
    alice = await server.client.get("/api/profile", headers=server.auth)
    assert alice.json()["groq_api_key"] is None


async def test_a_field_added_to_the_declarations_works_with_no_migration(
    make_server: ServerFactory,
) -> None:
    """A provider's new field: set, read back masked, listed in the API's description, and
    cleared, on a database that was migrated before it existed."""
    fields = {**credential_fields(), "acme_api_key": CredentialField(secret=True)}
    server = await make_server(fields=fields)
    schemas = (await server.client.get("/openapi.json")).json()["components"]["schemas"]
    for model in ("ProfileUpdate", "ProfilePublic"):
        assert list(schemas[model]["properties"])[: len(fields)] == list(fields), model

    resp = await server.client.patch(
        "/api/profile", json={"acme_api_key": SECRET}, headers=server.auth
    )
    assert resp.status_code == 200, resp.text
    assert SECRET not in resp.text
    assert resp.json()["acme_api_key"] == "sk-...7890"
    assert resp.json()["mistral_api_key"] is not None  # the others are kept
    read = await server.client.get("/api/profile", headers=server.auth)
    assert read.json()["acme_api_key"] == "sk-...7890"
    assert SECRET not in read.text
    stored = await stored_values(server)
    assert stored["acme_api_key"]
    assert SECRET not in stored["acme_api_key"]
    assert SECRET.encode() not in (server.settings.data_dir / "chatwire.db").read_bytes()

    resp = await server.client.patch(
        "/api/profile", json={"acme_api_key": None}, headers=server.auth
    )
    assert resp.status_code == 200
    assert resp.json()["acme_api_key"] is None
    assert "acme_api_key" not in await stored_values(server)


async def test_the_body_models_follow_the_fields(server: Running) -> None:
    """The shipped fields, in chatbot-ui's order, then the profile's own."""
    schemas = (await server.client.get("/openapi.json")).json()["components"]["schemas"]
    fields = list(credential_fields())
    update, public = schemas["ProfileUpdate"], schemas["ProfilePublic"]
    assert list(update["properties"]) == [*fields, "use_azure_openai"]
    assert list(public["properties"]) == [*fields, "username", "use_azure_openai"]
    assert update["additionalProperties"] is False
    assert public["required"] == ["username"]
    for name in fields:
        assert {"type": "string", "maxLength": 1000} in update["properties"][name]["anyOf"]
