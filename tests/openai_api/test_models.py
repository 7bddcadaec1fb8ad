"""GET /v1/models through the official openai SDK, over TCP."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.conftest import Running, ServerFactory


def client(server: Running, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=key or server.token, max_retries=0
    )


async def test_lists_the_callers_models_as_provider_slash_model(server: Running) -> None:
    async with client(server) as sdk:
        models = await sdk.models.list()
        ids = [m.id for m in models.data]
    assert "mistral/mistral-small-latest" in ids
    assert all(i.startswith("mistral/") for i in ids)  # only the Mistral key is stored
    assert "mistral/mistral-tiny" not in ids  # retired


async def test_retrieve_by_full_or_bare_name(server: Running) -> None:
    async with client(server) as sdk:
        full = await sdk.models.retrieve("mistral/mistral-small-latest")
        bare = await sdk.models.retrieve("mistral-small-latest")
    assert full.id == bare.id == "mistral/mistral-small-latest"
    assert full.owned_by == "mistral"


async def test_unknown_model_is_the_sdks_not_found_error(server: Running) -> None:
    async with client(server) as sdk:
        with pytest.raises(openai.NotFoundError) as caught:
            await sdk.models.retrieve("no-such-model")
    assert caught.value.status_code == 404
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_found"
    assert "provider/model" in body["message"]


async def test_ambiguous_bare_name_is_a_bad_request(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    models = tmp_path / "models.json"
    models.write_text('{"groq": {"shared-8b": {}}, "openrouter": {"shared-8b": {}}}')
    server = await make_server(models_file=models)
    async with client(server) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.models.retrieve("shared-8b")
        assert "groq/shared-8b or openrouter/shared-8b" in str(caught.value)
        qualified = await sdk.models.retrieve("groq/shared-8b")
    assert qualified.id == "groq/shared-8b"


async def test_a_bad_token_is_the_sdks_authentication_error(server: Running) -> None:
    async with client(server, key="cw_not-a-token") as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.models.list()
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "invalid_api_key"
    assert body["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/api/profile"),
        ("GET", "/api/keys"),
        ("POST", "/api/chat/mistral"),
        ("POST", "/v1/chat/completions"),
    ],
)
async def test_every_response_carries_server_timing(
    server: Running, method: str, path: str
) -> None:
    for headers in (server.auth, {}):  # answered and refused alike
        body = (
            {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}]}
            if path == "/v1/chat/completions"
            else server.chat_body()
        )
        resp = await server.client.request(
            method, path, json=body if method == "POST" else None, headers=headers
        )
        timing = resp.headers["server-timing"]
        assert timing.startswith("gateway;dur="), (path, timing)
        if resp.status_code == 200 and method == "POST":
            assert "upstream;dur=" in timing
