"""POST /v1/embeddings through the official openai SDK (``embeddings.create``, changed only in
base URL and key), over TCP, against the fakes of every provider that embeds: OpenAI, Azure,
Mistral, Gemini, Ollama and a user's custom OpenAI-compatible server.

The SDK asks for base64 unless told a format, and decodes it; the fakes' vectors are exact in
float32 (``tests.fakes._embeddings``), so what the client reads is exactly what the provider
sent, whichever format each side used.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web
from langchain_openai import OpenAIEmbeddings
from mistralai.client import Mistral
from mistralai.client.utils import BackoffStrategy, RetryConfig
from pydantic import SecretStr

from tests.conftest import Running, ServerFactory
from tests.fakes._embeddings import DEFAULT_DIMENSIONS, as_base64, vector
from tests.fakes._text import count_tokens
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI
from tests.scripted import ScriptedUpstream, Step

TEXTS = ["The gateway embeds text", "and every provider answers alike"]
NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


def floats(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def said(caught: pytest.ExceptionInfo[openai.APIStatusError]) -> str:
    """The error's message as chatwire wrote it (the SDK's message adds the status)."""
    body = caught.value.body
    assert isinstance(body, dict)
    message = body["message"]
    assert isinstance(message, str)
    return message


def tokens(texts: list[str]) -> int:
    return sum(count_tokens(text) for text in texts)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def served(make_server: ServerFactory, upstream: FakeOpenAI) -> Running:
    return await make_server(
        openai_base_url=upstream.base_url, openai_api_key=str(upstream.api_key)
    )


async def test_openai_default_base64_decodes_in_the_sdk(
    served: Running, upstream: FakeOpenAI
) -> None:
    async with sdk(served) as client:
        answer = await client.embeddings.create(
            model="openai/text-embedding-3-small", input="Hello there"
        )
    assert answer.object == "list"
    assert answer.model == "openai/text-embedding-3-small"
    assert [item.index for item in answer.data] == [0]
    assert answer.data[0].embedding == vector("Hello there")
    assert answer.usage.prompt_tokens == count_tokens("Hello there")
    assert answer.usage.total_tokens == count_tokens("Hello there")
    sent = upstream.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.json == {
        "model": "text-embedding-3-small",
        "input": "Hello there",
        "encoding_format": "base64",
    }
    assert sent.headers["authorization"] == f"Bearer {upstream.api_key}"


async def test_openai_floats_a_list_and_dimensions(served: Running, upstream: FakeOpenAI) -> None:
    async with sdk(served) as client:
        answer = await client.embeddings.create(
            model="text-embedding-3-large",  # a bare id the catalogue gives to OpenAI
            input=TEXTS,
            encoding_format="float",
            dimensions=8,
            user="user-42",
        )
    assert answer.model == "openai/text-embedding-3-large"
    assert [item.embedding for item in answer.data] == [vector(t, 8) for t in TEXTS]
    assert answer.usage.prompt_tokens == tokens(TEXTS)
    assert upstream.requests[-1].json == {
        "model": "text-embedding-3-large",
        "input": TEXTS,
        "encoding_format": "float",
        "dimensions": 8,
        "user": "user-42",
    }


async def test_openai_takes_token_arrays(served: Running, upstream: FakeOpenAI) -> None:
    arrays = [[1, 2, 3], [40, 50]]
    async with sdk(served) as client:
        answer = await client.embeddings.create(model="openai/text-embedding-3-small", input=arrays)
    assert [item.embedding for item in answer.data] == [vector(a) for a in arrays]
    assert answer.usage.prompt_tokens == 5
    assert upstream.requests[-1].json["input"] == arrays


async def test_an_answer_without_encoding_format_is_floats(served: Running) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": "plain"}
    resp = await served.client.post("/v1/embeddings", json=body, headers=served.auth)
    assert resp.status_code == 200
    answer = resp.json()
    assert answer == {
        "id": f"embd-{resp.headers['x-request-id']}",
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector("plain")}],
        "model": "openai/text-embedding-3-small",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


async def test_mistral_base64_list_and_dimensions(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        answer = await client.embeddings.create(model="mistral/codestral-embed", input=TEXTS)
        sized = await client.embeddings.create(
            model="mistral-embed", input="short", dimensions=4, encoding_format="base64"
        )
    assert [item.embedding for item in answer.data] == [vector(t) for t in TEXTS]
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == tokens(TEXTS)
    assert isinstance(sized.data[0].embedding, str)  # as asked: the SDK leaves it alone
    assert floats(sized.data[0].embedding) == vector("short", 4)
    # Mistral's names: output_dimension for dimensions.
    assert fake.requests[-1].json == {
        "model": "mistral-embed",
        "input": "short",
        "encoding_format": "base64",
        "output_dimension": 4,
    }


async def test_mistral_usage_keeps_only_what_embeddings_report(server: Running) -> None:
    body = {"model": "mistral/mistral-embed", "input": ["one", "two words"]}
    resp = await server.client.post("/v1/embeddings", json=body, headers=server.auth)
    assert resp.status_code == 200
    # Mistral also says completion_tokens: 0, which OpenAI's embeddings usage has no place for.
    assert resp.json()["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


async def test_mistral_refuses_token_arrays_and_user_by_name(
    server: Running, fake: FakeMistral
) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as tokens_refused:
            await client.embeddings.create(model="mistral/mistral-embed", input=[[1, 2]])
        with pytest.raises(openai.BadRequestError) as user_refused:
            await client.embeddings.create(model="mistral/mistral-embed", input="a", user="u")
    assert "Mistral embeds text only" in said(tokens_refused)
    assert "Mistral does not accept the parameter 'user'" in said(user_refused)
    assert fake.requests == []


async def test_gemini_floats_become_base64_and_no_usage_is_made_up(
    make_server: ServerFactory,
) -> None:
    async with FakeGemini() as gemini:
        server = await make_server(
            stored_key=None, google_base_url=gemini.base_url, google_gemini_api_key=gemini.api_key
        )
        async with sdk(server) as client:
            answer = await client.embeddings.create(
                model="google/gemini-embedding-001", input=TEXTS, dimensions=6
            )
            with pytest.raises(openai.BadRequestError) as refused:
                await client.embeddings.create(
                    model="google/gemini-embedding-001", input=[[1, 2]], user="u"
                )
        raw = await server.client.post(
            "/v1/embeddings",
            json={"model": "gemini-embedding-001", "input": "x", "encoding_format": "base64"},
            headers=server.auth,
        )
        dropping = await make_server(
            stored_key=None,
            google_base_url=gemini.base_url,
            google_gemini_api_key=gemini.api_key,
            drop_params=True,
        )
        dropped = await dropping.client.post(
            "/v1/embeddings",
            json={"model": "gemini-embedding-001", "input": "y", "user": "u"},
            headers=dropping.auth,
        )
    assert said(refused) == (
        "Google Gemini embeds text only: send 'input' as a string or a list of strings, not "
        "token arrays."
    )
    assert dropped.json()["data"][0]["embedding"] == vector("y")
    assert "user" not in str(gemini.requests[-1].json)
    assert [item.embedding for item in answer.data] == [vector(t, 6) for t in TEXTS]
    assert answer.usage is None  # Gemini reports no token counts for embeddings
    sent = gemini.requests[0]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.json == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "outputDimensionality": 6,
            }
            for text in TEXTS
        ]
    }
    assert sent.headers["x-goog-api-key"] == gemini.api_key
    body = raw.json()
    assert "usage" not in body
    assert floats(body["data"][0]["embedding"]) == vector("x")
    assert body["model"] == "google/gemini-embedding-001"


async def test_ollama_embeds_with_its_token_count(make_server: ServerFactory) -> None:
    async with FakeOllama() as ollama:
        server = await make_server(stored_key=None, ollama_base_url=ollama.base_url)
        async with sdk(server) as client:
            answer = await client.embeddings.create(
                model="ollama/nomic-embed-text", input=TEXTS, dimensions=5
            )
            with pytest.raises(openai.BadRequestError) as chat_model:
                await client.embeddings.create(model="ollama/llama3.2", input="x")
            with pytest.raises(openai.BadRequestError) as user:
                await client.embeddings.create(model="ollama/nomic-embed-text", input="x", user="u")
    assert said(user) == (
        "Ollama does not take 'user' through chatwire; leave them out (or have the operator "
        "set CHATWIRE_DROP_PARAMS=true)."
    )
    assert [item.embedding for item in answer.data] == [vector(t, 5) for t in TEXTS]
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == tokens(TEXTS)
    assert ollama.requests[0].path == "/api/embed"
    assert ollama.requests[0].json == {"model": "nomic-embed-text", "input": TEXTS, "dimensions": 5}
    assert "this model does not support embeddings" in said(chat_model)


class OllamaWithCapabilities(FakeOllama):
    """An Ollama whose /api/tags says what each model can do, as newer servers do."""

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        listed = [
            {"name": "llama3.2:latest", "capabilities": ["completion", "tools"]},
            {"name": "nomic-embed-text:latest", "capabilities": ["embedding"]},
        ]
        return web.json_response({"models": listed})


async def test_ollamas_embedding_models_are_listed_as_such(make_server: ServerFactory) -> None:
    async with OllamaWithCapabilities() as ollama:
        server = await make_server(stored_key=None, ollama_base_url=ollama.base_url)
        async with sdk(server) as client:
            cards = {m.id: m.model_dump() for m in (await client.models.list()).data}
            answer = await client.embeddings.create(
                model="ollama/nomic-embed-text:latest", input="x"
            )
        picker = (await server.client.get("/api/models", headers=server.auth)).json()
    assert cards["ollama/nomic-embed-text:latest"]["capabilities"]["completion_chat"] is False
    assert cards["ollama/llama3.2:latest"]["capabilities"]["completion_chat"] is True
    assert [m["modelId"] for m in picker["ollama"]] == ["llama3.2:latest"]
    assert answer.data[0].embedding == vector("x")


async def test_azure_embeds_through_the_embeddings_deployment(make_server: ServerFactory) -> None:
    async with FakeOpenAI() as azure:
        server = await make_server(stored_key=None)
        fields = {
            "azure_openai_api_key": str(azure.api_key),
            "azure_openai_endpoint": str(azure.root_url),
            "azure_openai_embeddings_id": "embeddings-small",
        }
        resp = await server.client.patch("/api/profile", json=fields, headers=server.auth)
        assert resp.status_code == 200
        async with sdk(server) as client:
            listed = [m.id for m in (await client.models.list()).data]
            answer = await client.embeddings.create(
                model="azure/text-embedding-3-small", input=TEXTS
            )
    assert "azure/text-embedding-3-small" in listed
    assert [item.embedding for item in answer.data] == [vector(t) for t in TEXTS]
    assert answer.usage.prompt_tokens == tokens(TEXTS)
    assert azure.deployments_called == ["embeddings-small"]
    sent = azure.requests[-1]
    assert sent.path == "/openai/deployments/embeddings-small/embeddings"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == azure.api_key


async def test_a_custom_model_embeds_through_the_guarded_session(
    make_server: ServerFactory, upstream: FakeOpenAI
) -> None:
    record = {
        "name": "Local embeddings",
        "model_id": "text-embedding-3-small",
        "base_url": str(upstream.base_url),
        "api_key": str(upstream.api_key),
        "context_length": 8191,
    }
    for allow, status in (("127.0.0.1", 200), ("", 403)):
        server = await make_server(upstream_allow=allow)
        resp = await server.client.post("/api/custom-models", json=record, headers=server.auth)
        assert resp.status_code == 201
        body = {"model": "custom/Local embeddings", "input": "mine", "encoding_format": "float"}
        resp = await server.client.post("/v1/embeddings", json=body, headers=server.auth)
        assert resp.status_code == status, resp.text
        if status == 200:
            assert resp.json()["data"][0]["embedding"] == vector("mine")
            assert resp.json()["model"] == "custom/Local embeddings"
        else:
            assert "not an address chatwire may call" in resp.json()["error"]["message"]
    assert len([r for r in upstream.requests if r.path == "/v1/embeddings"]) == 1


async def test_models_list_embedding_models_as_not_chatting(served: Running) -> None:
    async with sdk(served) as client:
        cards = {m.id: m for m in (await client.models.list()).data}
    embed = cards["openai/text-embedding-3-small"].model_dump()
    assert embed["capabilities"]["completion_chat"] is False
    assert cards["openai/gpt-4o"].model_dump()["capabilities"]["completion_chat"] is True
    picker = (await served.client.get("/api/models", headers=served.auth)).json()
    offered = {m["modelId"] for m in picker["openai"]}
    assert "gpt-4o" in offered
    assert "text-embedding-3-small" not in offered


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


async def test_langchain_embeds_documents_and_queries(server: Running, fake: FakeMistral) -> None:
    # Sending text, not tiktoken's token arrays, which only OpenAI's own models read.
    async with httpx.AsyncClient() as http:
        embedder = OpenAIEmbeddings(
            model="mistral/mistral-embed",
            base_url=f"{server.url}/v1",
            api_key=SecretStr(server.token),
            check_embedding_ctx_length=False,
            max_retries=0,
            http_async_client=http,
        )
        assert await embedder.aembed_documents(TEXTS) == [vector(t) for t in TEXTS]
        assert await embedder.aembed_query("a question") == vector("a question")
    assert fake.requests[0].json["input"] == TEXTS


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


async def test_the_mistralai_sdk_embeds(server: Running, fake: FakeMistral) -> None:
    async with Mistral(api_key=server.token, server_url=server.url, retry_config=NO_RETRIES) as m:
        answer = await m.embeddings.create_async(model="mistral/mistral-embed", inputs=TEXTS)
    assert [item.embedding for item in answer.data] == [vector(t) for t in TEXTS]
    assert answer.usage.prompt_tokens == tokens(TEXTS)
    assert answer.model == "mistral/mistral-embed"
