"""A path no route serves is a 404 that says so and names the routes there are: in OpenAI's
error shape under /v1 (code ``unknown_url``, as the openai SDK reads it), as chatwire's own
``{"message"}`` elsewhere."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Running

V1_ROUTES = (
    "GET /v1/models, GET /v1/models/{name}, GET /v1/responses/{response_id}, "
    "DELETE /v1/responses/{response_id}, GET /v1/responses/{response_id}/input_items, "
    "POST /v1/chat/completions, POST /v1/embeddings, POST /v1/responses, "
    "POST /v1/messages, POST /v1/messages/count_tokens"
)


async def test_an_unknown_v1_url_is_the_sdks_not_found_error(server: Running) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=server.token, max_retries=0
    ) as sdk:
        with pytest.raises(openai.NotFoundError) as caught:
            await sdk.moderations.create(model="mistral/mistral-moderation", input="hello")
    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": f"Unknown URL: POST /v1/moderations. The routes under /v1 are: {V1_ROUTES}.",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }


async def test_unknown_urls_over_plain_http(server: Running) -> None:
    deeper = await server.client.get("/v1/chat/completions/extra", headers=server.auth)
    assert deeper.status_code == 404
    assert deeper.json()["error"]["code"] == "unknown_url"
    assert deeper.json()["error"]["message"].startswith(
        "Unknown URL: GET /v1/chat/completions/extra. The routes under /v1 are: "
    )
    api = await server.client.get("/api/nothing-here")
    assert api.status_code == 404
    message = api.json()["message"]
    assert message.startswith("Unknown URL: GET /api/nothing-here. The routes under /api are: ")
    assert "POST /api/chat/{provider}" in message
    assert "GET /api/profile" in message
    assert "/v1/" not in message
    elsewhere = await server.client.get("/nothing")
    assert elsewhere.json()["message"].startswith("Unknown URL: GET /nothing. The routes are: ")
    assert "GET /healthz" in elsewhere.json()["message"]
    # A route's own 404 keeps its own code.
    model = await server.client.get("/v1/models/no-such-model", headers=server.auth)
    assert model.json()["error"]["code"] == "model_not_found"
