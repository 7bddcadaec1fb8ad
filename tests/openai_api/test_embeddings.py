"""POST /v1/embeddings through the official openai SDK (``embeddings.create``, changed only in
base URL and key), over TCP, against the fakes of every provider that embeds: OpenAI, Azure,
Mistral, Gemini, Ollama and a user's custom OpenAI-compatible server; and through the
mistralai SDK and LangChain's ``OpenAIEmbeddings``.

The SDK asks for base64 unless told a format, and decodes it; the fakes' vectors are exact in
float32 (``tests.fakes._embeddings``), so what the client reads is exactly what the provider
sent, whichever format each side used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from aiohttp import web
from langchain_openai import OpenAIEmbeddings
from mistralai.client import Mistral
from mistralai.client.utils import BackoffStrategy, RetryConfig
from pydantic import SecretStr

from tests.conftest import Running, ServerFactory
from tests.fakes._embeddings import vector
from tests.fakes._text import count_tokens
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI
from tests.openai_api._embeddings import TEXTS, floats, said, sdk, tokens

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)


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


async def test_the_mistralai_sdk_embeds(server: Running, fake: FakeMistral) -> None:
    async with Mistral(api_key=server.token, server_url=server.url, retry_config=NO_RETRIES) as m:
        answer = await m.embeddings.create_async(model="mistral/mistral-embed", inputs=TEXTS)
    assert [item.embedding for item in answer.data] == [vector(t) for t in TEXTS]
    assert answer.usage.prompt_tokens == tokens(TEXTS)
    assert answer.model == "mistral/mistral-embed"
