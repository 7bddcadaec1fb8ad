"""GET /api/models reflects the caller's keys, the environment's, and their custom models."""

from __future__ import annotations

from tests.conftest import Running, ServerFactory


async def test_models_follow_the_callers_keys(server: Running) -> None:
    resp = await server.client.get("/api/models", headers=server.auth)
    assert resp.status_code == 200
    grouped = resp.json()
    assert set(grouped) == {"mistral"}  # only the Mistral key is stored
    ids = {m["modelId"] for m in grouped["mistral"]}
    assert "mistral-small-latest" in ids
    assert "mistral-tiny" not in ids  # retired
    small = next(m for m in grouped["mistral"] if m["modelId"] == "mistral-small-latest")
    assert small["provider"] == "mistral"
    assert small["hostedId"] == "mistral-small-latest"
    assert small["modelName"]

    await server.client.patch(
        "/api/profile",
        json={"mistral_api_key": None, "anthropic_api_key": "sk-ant-0123456789"},
        headers=server.auth,
    )
    grouped = (await server.client.get("/api/models", headers=server.auth)).json()
    assert set(grouped) == {"anthropic"}


async def test_environment_keys_count_for_everyone(make_server: ServerFactory) -> None:
    server = await make_server(stored_key=None, groq_api_key="gsk-env-0123456789")
    grouped = (await server.client.get("/api/models", headers=server.auth)).json()
    assert set(grouped) == {"groq"}


async def test_azure_models_need_endpoint_key_and_deployment(server: Running) -> None:
    await server.client.patch(
        "/api/profile",
        json={
            "mistral_api_key": None,
            "azure_openai_api_key": "az-0123456789abc",
            "azure_openai_endpoint": "https://example.openai.azure.com",
        },
        headers=server.auth,
    )
    grouped = (await server.client.get("/api/models", headers=server.auth)).json()
    assert "azure" not in grouped
    await server.client.patch(
        "/api/profile", json={"azure_openai_35_turbo_id": "gpt35"}, headers=server.auth
    )
    grouped = (await server.client.get("/api/models", headers=server.auth)).json()
    assert [m["modelId"] for m in grouped["azure"]] == ["gpt-3.5-turbo"]


async def test_custom_models_are_listed_with_their_id(server: Running) -> None:
    created = (
        await server.client.post(
            "/api/custom-models",
            json={"name": "Local", "model_id": "llama3", "base_url": "http://127.0.0.1:9/v1"},
            headers=server.auth,
        )
    ).json()
    grouped = (await server.client.get("/api/models", headers=server.auth)).json()
    assert grouped["custom"] == [
        {
            "modelId": "llama3",
            "modelName": "Local",
            "provider": "custom",
            "hostedId": created["id"],
            "imageInput": False,
            "maxContext": 4096,
            "maxOutput": None,
        }
    ]
