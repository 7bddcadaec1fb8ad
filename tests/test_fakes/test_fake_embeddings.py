"""The fakes' embeddings endpoints, exercised over real TCP with aiohttp's client: each
provider's request and answer shapes, and its refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes._embeddings import as_base64, vector
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def test_vectors_are_deterministic_and_exact_in_float32() -> None:
    assert vector("a") == vector("a") != vector("b")
    assert vector([1, 2]) != vector("1,2 ")
    assert len(vector("a", 3000)) == 3000
    assert all(-1 <= x <= 1 and (x * 1024).is_integer() for x in vector("a", 100))
    assert as_base64([1.0, -0.5]) == "AACAPwAAAL8="


async def test_openai_and_azure(session: aiohttp.ClientSession) -> None:
    async with FakeOpenAI() as fake:
        auth = {"Authorization": f"Bearer {fake.api_key}"}
        url = f"{fake.base_url}/embeddings"
        body = {"model": "text-embedding-3-small", "input": ["a b", "c"], "dimensions": 3}
        status, answer = await post(session, url, body, auth)
        assert status == 200
        assert answer == {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": vector("a b", 3)},
                {"object": "embedding", "index": 1, "embedding": vector("c", 3)},
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        }
        body = {"model": "text-embedding-3-small", "input": [5, 6], "encoding_format": "base64"}
        status, answer = await post(session, url, body, auth)
        assert answer["data"][0]["embedding"] == as_base64(vector([5, 6]))
        assert answer["usage"]["prompt_tokens"] == 2
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"input": "x"}, 400, "You must provide a model parameter."),
            ({"model": "text-embedding-3-small"}, 400, "'input' is a required property"),
            ({"model": "text-embedding-3-small", "input": []}, 400, "'$.input' is invalid"),
            ({"model": "gpt-4o", "input": "x"}, 404, "The model `gpt-4o` does not exist"),
            (
                {"model": "text-embedding-ada-002", "input": "x", "dimensions": 8},
                400,
                "This model does not support specifying dimensions.",
            ),
            ({"model": "fake-429", "input": "x"}, 429, "Rate limit reached"),
        ]
        for request, code, message in cases:
            status, answer = await post(session, url, request, auth)
            assert (status, answer["error"]["message"][: len(message)]) == (code, message)
        status, _ = await post(session, url, {"model": "x", "input": "x"}, {})
        assert status == 401

        azure = f"{fake.root_url}/openai/deployments/embeddings-small/embeddings"
        key = {"api-key": str(fake.api_key)}
        status, answer = await post(session, f"{azure}?api-version=2024-10-21", {"input": "z"}, key)
        assert status == 200
        assert answer["model"] == "text-embedding-3-small"
        assert answer["data"][0]["embedding"] == vector("z")
        status, answer = await post(session, azure, {"input": "z"}, key)
        assert (status, answer["error"]["message"]) == (404, "Resource not found")
        other = f"{fake.root_url}/openai/deployments/nope/embeddings?api-version=2024-10-21"
        status, answer = await post(session, other, {"input": "z"}, key)
        assert (status, answer["error"]["code"]) == (404, "DeploymentNotFound")
        assert fake.deployments_called == ["embeddings-small", "embeddings-small", "nope"]


async def test_mistral(session: aiohttp.ClientSession) -> None:
    async with FakeMistral() as fake:
        auth = {"Authorization": f"Bearer {fake.api_key}"}
        url = f"{fake.base_url}/embeddings"
        body = {"model": "codestral-embed", "input": "a b c", "output_dimension": 2}
        status, answer = await post(session, url, body, auth)
        assert status == 200
        assert answer["data"] == [
            {"object": "embedding", "embedding": vector("a b c", 2), "index": 0}
        ]
        assert answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3, "completion_tokens": 0}
        assert len(answer["id"]) == 32
        status, answer = await post(
            session, url, {"model": "mistral-embed", "input": [[1]], "dimensions": 4}, auth
        )
        assert status == 422
        assert [(e["type"], e["loc"]) for e in answer["message"]["detail"]] == [
            ("string_type", ["body", "input", "list[str]", 0]),
            ("extra_forbidden", ["body", "dimensions"]),
        ]
        status, answer = await post(session, url, {"model": "mistral-small", "input": "x"}, auth)
        assert (status, answer["type"]) == (400, "invalid_model")
        status, _ = await post(session, url, {"model": "fake-503", "input": "x"}, auth)
        assert status == 503


async def test_gemini(session: aiohttp.ClientSession) -> None:
    async with FakeGemini() as fake:
        key = {"x-goog-api-key": str(fake.api_key)}
        base = f"{fake.base_url}/models/gemini-embedding-001"
        one = {"content": {"parts": [{"text": "hello "}, {"text": "there"}]}}
        batch = {
            "requests": [{"model": "models/gemini-embedding-001", **one, "outputDimensionality": 4}]
        }
        status, answer = await post(session, f"{base}:batchEmbedContents", batch, key)
        assert (status, answer) == (200, {"embeddings": [{"values": vector("hello there", 4)}]})
        status, answer = await post(session, f"{base}:embedContent", one, key)
        assert (status, answer) == (200, {"embedding": {"values": vector("hello there")}})
        wrong = {"requests": [{"model": "models/text-embedding-004", **one}]}
        status, answer = await post(session, f"{base}:batchEmbedContents", wrong, key)
        assert status == 400
        assert "must be the one of the URL" in answer["error"]["message"]
        unknown = {"requests": [{**one, "dimensions": 4}]}
        status, answer = await post(session, f"{base}:batchEmbedContents", unknown, key)
        assert status == 400
        assert 'Unknown name "dimensions"' in answer["error"]["message"]
        chat = f"{fake.base_url}/models/gemini-2.5-flash:batchEmbedContents"
        status, answer = await post(session, chat, {"requests": [one]}, key)
        assert (status, answer["error"]["status"]) == (404, "NOT_FOUND")
        status, answer = await post(session, f"{base}:batchEmbedContents", batch, {})
        assert status == 403


async def test_ollama(session: aiohttp.ClientSession) -> None:
    async with FakeOllama() as fake:
        url = f"{fake.base_url}/api/embed"
        status, answer = await post(session, url, {"model": "nomic-embed-text", "input": "a b"}, {})
        assert status == 200
        assert answer["embeddings"] == [vector("a b")]
        assert answer["prompt_eval_count"] == 2
        assert answer["model"] == "nomic-embed-text"
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"input": "x"}, 400, "model is required"),
            ({"model": "nomic-embed-text", "input": [1]}, 400, "invalid input type"),
            ({"model": "llama3.2", "input": "x"}, 400, "this model does not support embeddings"),
            ({"model": "nope", "input": "x"}, 404, 'model "nope" not found, try pulling it first'),
            ({"model": "fake-500", "input": "x"}, 500, "llama runner process has terminated"),
        ]
        for request, code, message in cases:
            status, answer = await post(session, url, request, {})
            assert (status, answer["error"][: len(message)]) == (code, message)
