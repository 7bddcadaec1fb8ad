"""POST /v1/embeddings when something is wrong: the wrong kind of model, a provider without
embeddings, no key, bad bodies, an upstream that refuses, stalls or answers in another shape;
each answered in OpenAI's error shape, as the chats are, and read by the openai SDK as its
own exception class. And the conversion of vectors between the formats, whatever an
OpenAI-compatible server sends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.conftest import Running, ServerFactory
from tests.fakes._embeddings import DEFAULT_DIMENSIONS, as_base64, vector
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_openai import FakeOpenAI
from tests.openai_api._embeddings import floats, said, sdk
from tests.scripted import ScriptedUpstream, Step


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def served(make_server: ServerFactory, upstream: FakeOpenAI) -> Running:
    return await make_server(
        openai_base_url=upstream.base_url, openai_api_key=str(upstream.api_key)
    )


async def test_the_wrong_kind_of_model_is_a_clear_400(served: Running) -> None:
    async with sdk(served) as client:
        with pytest.raises(openai.BadRequestError) as chat_for_embeddings:
            await client.embeddings.create(model="openai/gpt-4o", input="x")
        with pytest.raises(openai.BadRequestError) as embeddings_for_chat:
            await client.chat.completions.create(
                model="openai/text-embedding-3-small",
                messages=[{"role": "user", "content": "hi"}],
            )
    assert said(chat_for_embeddings) == (
        "'openai/gpt-4o' is a chat model, not an embedding model. OpenAI's embedding models "
        "are: openai/text-embedding-3-large, openai/text-embedding-3-small, "
        "openai/text-embedding-ada-002."
    )
    assert said(embeddings_for_chat) == (
        "'openai/text-embedding-3-small' is an embedding model: it answers POST /v1/embeddings, "
        "not chats."
    )


async def test_a_provider_without_embeddings_names_those_with(server: Running) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model="anthropic/claude-3-haiku-20240307", input="x")
    assert said(caught) == (
        "Anthropic has no embeddings API. The providers with embeddings are: azure, custom, "
        "google, mistral, ollama, openai."
    )


async def test_unknown_model_missing_key_and_bad_token(server: Running) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.embeddings.create(model="no-such-embedder", input="x")
        with pytest.raises(openai.BadRequestError) as no_key:
            await client.embeddings.create(model="openai/text-embedding-3-small", input="x")
    assert "'no-such-embedder' does not exist" in said(unknown)
    assert unknown.value.code == "model_not_found"
    assert said(no_key) == ("OpenAI API Key not found. Please set it in your profile settings.")
    assert no_key.value.code == "provider_key_missing"
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="not-a-token", max_retries=0
    ) as stranger:
        with pytest.raises(openai.AuthenticationError):
            await stranger.embeddings.create(model="mistral/mistral-embed", input="x")


async def test_upstream_refusals_are_mapped_as_chats_map_them(
    served: Running, upstream: FakeOpenAI
) -> None:
    async with sdk(served) as client:
        with pytest.raises(openai.RateLimitError) as limited:
            await client.embeddings.create(model="openai/fake-429", input="x")
        with pytest.raises(openai.InternalServerError) as broken:
            await client.embeddings.create(model="openai/fake-500", input="x")
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.embeddings.create(model="openai/text-embedding-9", input="x")
    assert limited.value.response.headers["retry-after"] == "7"
    assert said(limited).startswith("OpenAI answered 429: Rate limit reached")
    assert broken.value.status_code == 500
    assert said(broken).startswith("OpenAI answered 500: The server had an error")
    assert said(unknown) == (
        "OpenAI answered 404: The model `text-embedding-9` does not exist or you do not have "
        "access to it."
    )


async def test_an_upstream_that_never_answers_times_out(
    make_server: ServerFactory, upstream: FakeOpenAI
) -> None:
    server = await make_server(
        openai_base_url=upstream.base_url,
        openai_api_key=str(upstream.api_key),
        first_byte_timeout=0.3,
    )
    async with sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.embeddings.create(model="openai/fake-stall", input="x")
    assert caught.value.status_code == 504
    assert said(caught) == (
        "OpenAI did not start answering within 0.3 s (CHATWIRE_FIRST_BYTE_TIMEOUT). "
        "Try again later."
    )
    await upstream.wait_for_active_requests(0)


async def test_a_failed_try_is_tried_again(make_server: ServerFactory, fake: FakeMistral) -> None:
    server = await make_server(upstream_retries=1, retry_backoff=0.01)
    fake.fail_next(503)
    async with sdk(server) as client:
        answer = await client.embeddings.create(model="mistral/mistral-embed", input="again")
    assert answer.data[0].embedding == vector("again")
    assert [r.path for r in fake.requests] == ["/v1/embeddings", "/v1/embeddings"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "x"}, "Invalid request body: 'model' is required, a string."),
        ({"model": "mistral-embed"}, "Invalid request body: 'input' is required, a string"),
        ({"model": "mistral-embed", "input": []}, "'input' must be a string, a list of strings"),
        ({"model": "mistral-embed", "input": [["a"]]}, "'input' must be a string, a list of"),
        (
            {"model": "mistral-embed", "input": "x", "encoding_format": "int8"},
            "'encoding_format' must be 'float' or 'base64', not 'int8'.",
        ),
        (
            {"model": "mistral-embed", "input": "x", "dimensions": 0},
            "'dimensions' must be a positive integer, not 0.",
        ),
    ],
)
async def test_bad_requests_are_400s_in_openais_shape(
    server: Running, fake: FakeMistral, body: dict[str, Any], message: str
) -> None:
    resp = await server.client.post("/v1/embeddings", json=body, headers=server.auth)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith(message)
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


async def test_bodies_are_bounded_as_chats_are(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_body_bytes=1000)
    big = {"model": "mistral/mistral-embed", "input": ["word " * 50] * 10}
    resp = await server.client.post("/v1/embeddings", json=big, headers=server.auth)
    assert resp.status_code == 413
    assert resp.json()["error"]["message"] == (
        "The request body is larger than 1000 bytes (CHATWIRE_MAX_BODY_BYTES)."
    )
    get = await server.client.get("/v1/embeddings", headers=server.auth)
    assert get.status_code == 405
    assert fake.requests == []


async def test_vectors_are_exact_whichever_format(served: Running) -> None:
    for fmt in ("float", "base64"):
        body = {"model": "openai/text-embedding-3-small", "input": "same", "encoding_format": fmt}
        resp = await served.client.post("/v1/embeddings", json=body, headers=served.auth)
        [item] = resp.json()["data"]
        got = item["embedding"] if fmt == "float" else floats(item["embedding"])
        assert got == vector("same")
        assert len(got) == DEFAULT_DIMENSIONS


def scripted_answer(payload: dict[str, Any]) -> list[Step]:
    body = json.dumps(payload).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    return [head + b"Content-Length: %d\r\n\r\n" % len(body) + body]


@pytest.mark.parametrize(
    ("sent", "asked", "expected"),
    [
        # A server that answers base64 whatever it was asked: decoded for a client of floats.
        (as_base64([0.5, -0.25]), "float", [0.5, -0.25]),
        # One that ignores the format and answers numbers: encoded for a client of base64.
        ([0.5, -0.25], "base64", as_base64([0.5, -0.25])),
    ],
)
async def test_a_server_that_ignores_the_format_is_converted(
    make_server: ServerFactory, sent: Any, asked: str, expected: Any
) -> None:
    answer = {"object": "list", "data": [{"index": 0, "embedding": sent}], "model": "m"}
    scripted = ScriptedUpstream(scripted_answer(answer))
    await scripted.start()
    try:
        server = await make_server(openai_base_url=scripted.base_url, openai_api_key="k")
        body = {"model": "openai/text-embedding-3-small", "input": "x", "encoding_format": asked}
        resp = await server.client.post("/v1/embeddings", json=body, headers=server.auth)
    finally:
        await scripted.stop()
    assert resp.status_code == 200
    assert resp.json()["data"][0]["embedding"] == expected
    assert "usage" not in resp.json()  # none reported, none made up


@pytest.mark.parametrize(
    "answer",
    [
        {"object": "list", "data": [], "model": "m"},  # fewer vectors than inputs
        {"object": "list", "data": [{"index": 0, "embedding": ["a"]}], "model": "m"},
        {"error": "shaped otherwise"},
    ],
)
async def test_a_broken_answer_is_a_502(make_server: ServerFactory, answer: Any) -> None:
    scripted = ScriptedUpstream(scripted_answer(answer))
    await scripted.start()
    try:
        server = await make_server(openai_base_url=scripted.base_url, openai_api_key="k")
        body = {"model": "openai/text-embedding-3-small", "input": "x", "encoding_format": "base64"}
        resp = await server.client.post("/v1/embeddings", json=body, headers=server.auth)
    finally:
        await scripted.stop()
    assert resp.status_code == 502
    assert resp.json()["error"]["message"].startswith("OpenAI sent a broken reply: ")
