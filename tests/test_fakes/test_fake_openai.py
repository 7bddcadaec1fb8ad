"""The fake OpenAI-compatible API and its Azure mode, over real TCP with aiohttp's client."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes._faults import (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    FAULT_SLOW,
    FAULT_SPLIT_UTF8,
    FAULT_STALL,
    FAULT_STALL_MID,
    SPLIT_UTF8_REPLY,
)
from tests.fakes.fake_openai import FakeOpenAI
from tests.test_fakes._helpers import arrival_gaps, collect, cuts_inside_characters, read_for

KEY = "fake-openai-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "gpt-4o-mini"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "hi there, fake"}]},
]
VERSION = "2024-10-21"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(organization="org-fake") as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def url(fake: FakeOpenAI) -> str:
    assert fake.base_url is not None
    assert fake.base_url.endswith("/v1")
    return f"{fake.base_url}/chat/completions"


def azure_url(fake: FakeOpenAI, deployment: str = "gpt-4o", version: str | None = VERSION) -> str:
    query = f"?api-version={version}" if version is not None else ""
    return f"{fake.root_url}/openai/deployments/{deployment}/chat/completions{query}"


def body(model: str = MODEL, *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, "stream": stream, **extra}


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    events = raw.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(event.startswith("data: ") for event in events[:-1])
    return [json.loads(event.removeprefix("data: ")) for event in events[:-2]]


def contents(chunks: list[dict[str, Any]]) -> list[str]:
    return [
        chunk["choices"][0]["delta"]["content"]
        for chunk in chunks
        if chunk["choices"] and "content" in chunk["choices"][0]["delta"]
    ]


async def test_stream_has_openai_shape(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(), headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["openai-organization"] == "org-fake"
        raw = await resp.read()
    chunks = chunks_of(raw)
    assert all("usage" not in chunk for chunk in chunks)
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", chunks[0]["id"])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk["model"] == MODEL for chunk in chunks)
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert chunks[-1]["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    pieces = fake.expected_pieces(MESSAGES)
    assert contents(chunks)[1:] == pieces
    assert "".join(pieces) == fake.expected_reply(MESSAGES) == "Hello! You said: hi there, fake"
    assert fake.streams_completed == 1


async def test_include_usage_adds_a_usage_chunk(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    request = body(stream_options={"include_usage": True})
    async with session.post(url(fake), json=request, headers=AUTH) as resp:
        chunks = chunks_of(await resp.read())
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    pieces = len(fake.expected_pieces(MESSAGES))
    assert last["usage"]["prompt_tokens"] == 2 + 3
    assert last["usage"]["completion_tokens"] == pieces
    assert last["usage"]["total_tokens"] == 5 + pieces
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
async def test_token_limit_finishes_with_length(
    fake: FakeOpenAI, session: aiohttp.ClientSession, limit: str
) -> None:
    request = {**body(), limit: 2}
    async with session.post(url(fake), json=request, headers=AUTH) as resp:
        chunks = chunks_of(await resp.read())
    assert "".join(contents(chunks)) == fake.expected_reply(MESSAGES, max_tokens=2) == "Hello! You"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_non_stream_completion(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(stream=False), headers=AUTH) as resp:
        completion = await resp.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == fake.expected_reply(MESSAGES)
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["completion_tokens"] == len(fake.expected_pieces(MESSAGES))


def error_of(text: str) -> dict[str, Any]:
    assert text.startswith('{\n    "error": {\n')  # four-space indents, as OpenAI sends errors
    error: dict[str, Any] = json.loads(text)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_auth_failures(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body()) as resp:
        assert resp.status == 401
        error = error_of(await resp.text())
    assert error["message"].startswith("You didn't provide an API key.")
    assert error["code"] is None
    wrong = "sk-proj-0123456789abcd"
    async with session.post(
        url(fake), json=body(), headers={"Authorization": f"Bearer {wrong}"}
    ) as resp:
        assert resp.status == 401
        error = error_of(await resp.text())
    assert error["message"] == (
        "Incorrect API key provided: sk-***************abcd. You can find your API key at"
        " https://platform.openai.com/account/api-keys."
    )
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")


async def test_organization_header_is_recorded_and_checked(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    headers = {**AUTH, "OpenAI-Organization": "org-fake"}
    async with session.post(url(fake), json=body(stream=False), headers=headers) as resp:
        assert resp.status == 200
    assert fake.requests[-1].headers["openai-organization"] == "org-fake"
    headers["OpenAI-Organization"] = "org-other"
    async with session.post(url(fake), json=body(), headers=headers) as resp:
        assert resp.status == 401
        assert error_of(await resp.text())["code"] == "mismatched_organization"


@pytest.mark.parametrize(
    ("request_body", "param", "code", "message"),
    [
        (
            {"messages": MESSAGES},
            "model",
            "missing_required_parameter",
            "Missing required parameter: 'model'.",
        ),
        (
            {"model": MODEL, "messages": "hi"},
            "messages",
            "invalid_type",
            "Invalid type for 'messages': expected an array, but got a string instead.",
        ),
        ({"model": MODEL, "messages": []}, "messages", "empty_array", None),
    ],
)
async def test_what_every_compatible_server_rejects(
    fake: FakeOpenAI,
    session: aiohttp.ClientSession,
    request_body: dict[str, Any],
    param: str,
    code: str,
    message: str | None,
) -> None:
    async with session.post(url(fake), json=request_body, headers=AUTH) as resp:
        assert resp.status == 400
        error = error_of(await resp.text())
    assert (error["param"], error["code"]) == (param, code)
    if message is not None:
        assert error["message"] == message


async def test_validation_is_lax_and_json_is_checked(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    request = body(stream=False, seed=7, user="u1", n=1, temperature=1.7, logit_bias={})
    async with session.post(url(fake), json=request, headers=AUTH) as resp:
        assert resp.status == 200
    async with session.post(url(fake), data=b"{nope", headers=AUTH) as resp:
        assert resp.status == 400
        assert error_of(await resp.text())["message"].startswith("We could not parse the JSON body")


async def test_unknown_model_and_route_are_404(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    async with session.post(url(fake), json=body("gpt-9"), headers=AUTH) as resp:
        assert resp.status == 404
        error = error_of(await resp.text())
    assert error["message"] == "The model `gpt-9` does not exist or you do not have access to it."
    assert error["code"] == "model_not_found"
    async with session.post(f"{fake.base_url}/completionz", json={}, headers=AUTH) as resp:
        assert resp.status == 404
        assert error_of(await resp.text())["message"] == "Invalid URL (POST /v1/completionz)"


@pytest.mark.parametrize(
    ("model", "status", "kind", "code"),
    [
        (FAULT_429, 429, "requests", "rate_limit_exceeded"),
        (FAULT_500, 500, "server_error", None),
        (FAULT_503, 503, "server_error", None),
    ],
)
async def test_refusing_faults(
    fake: FakeOpenAI,
    session: aiohttp.ClientSession,
    model: str,
    status: int,
    kind: str,
    code: str | None,
) -> None:
    async with session.post(url(fake), json=body(model), headers=AUTH) as resp:
        assert resp.status == status
        if status == 429:
            assert resp.headers["Retry-After"] == "7"
            assert resp.headers["x-ratelimit-remaining-requests"] == "0"
        error = error_of(await resp.text())
    assert (error["type"], error["code"]) == (kind, code)


async def test_drop_stall_and_stall_mid(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_DROP), headers=AUTH) as resp:
        chunks, error = await collect(resp)
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert b"[DONE]" not in b"".join(chunks)
    with pytest.raises(asyncio.TimeoutError):
        await session.post(
            url(fake),
            json=body(FAULT_STALL),
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    async with session.post(url(fake), json=body(FAULT_STALL_MID), headers=AUTH) as resp:
        raw, still_open = await read_for(resp, 0.2)
    assert still_open
    assert raw.count(b"data: ") == 3  # role chunk and two pieces
    await fake.wait_for_connections(0)
    assert fake.active_requests == 0


async def test_split_utf8_and_slow(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_SPLIT_UTF8), headers=AUTH) as resp:
        chunks, error = await collect(resp)
    assert error is None
    assert cuts_inside_characters(chunks)
    assert "".join(contents(chunks_of(b"".join(chunks)))) == SPLIT_UTF8_REPLY
    async with session.post(url(fake), json=body(FAULT_SLOW), headers=AUTH) as resp:
        gaps = await arrival_gaps(resp, b'"delta":{"content"')
    assert len(gaps) == len(fake.expected_pieces(MESSAGES)) - 1
    assert all(gap >= 0.04 for gap in gaps)


async def test_azure_routes_by_deployment(session: aiohttp.ClientSession) -> None:
    deployments = {"chat-prod": "gpt-4o-2024-08-06"}
    async with FakeOpenAI(deployments=deployments) as fake:
        headers = {"api-key": KEY}
        request = {"messages": MESSAGES, "stream": True}  # no model: the deployment decides
        async with session.post(
            azure_url(fake, "chat-prod"), json=request, headers=headers
        ) as resp:
            assert resp.status == 200
            chunks = chunks_of(await resp.read())
        assert fake.deployments_called == ["chat-prod"]
        assert fake.requests[-1].query == {"api-version": VERSION}
    first = chunks[0]
    assert (first["id"], first["model"], first["choices"]) == ("", "", [])
    assert first["prompt_filter_results"][0]["prompt_index"] == 0
    assert {chunk["model"] for chunk in chunks[1:]} == {"gpt-4o-2024-08-06"}
    assert all("content_filter_results" in chunk["choices"][0] for chunk in chunks[1:])
    assert "".join(contents(chunks)) == fake.expected_reply(MESSAGES)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("deployment", "version", "headers", "status", "error"),
    [
        ("gpt-4o", None, {"api-key": KEY}, 404, {"code": "404", "message": "Resource not found"}),
        (
            "gpt-4o",
            "2019-01-01",
            {"api-key": KEY},
            400,
            {"code": "BadRequest", "message": "API version not supported"},
        ),
        ("gpt-4o", VERSION, {}, 401, None),
        ("gpt-4o", VERSION, {"api-key": "wrong"}, 401, None),
        ("gpt-4o", VERSION, AUTH, 401, None),  # Azure wants api-key, not a Bearer key
        ("missing", VERSION, {"api-key": KEY}, 404, None),
    ],
)
async def test_azure_errors(
    fake: FakeOpenAI,
    session: aiohttp.ClientSession,
    deployment: str,
    version: str | None,
    headers: dict[str, str],
    status: int,
    error: dict[str, str] | None,
) -> None:
    async with session.post(
        azure_url(fake, deployment, version), json=body(), headers=headers
    ) as resp:
        assert resp.status == status
        answer = await resp.json()
    if error is not None:
        assert answer == {"error": error}
    elif status == 401:
        assert answer["error"]["code"] == "401"
        assert answer["error"]["message"].startswith(
            "Access denied due to invalid subscription key"
        )
    else:
        assert answer["error"]["code"] == "DeploymentNotFound"
        assert answer["error"]["message"].startswith(
            "The API deployment for this resource does not exist."
        )
    assert fake.deployments_called == [deployment]


async def test_azure_throttling_and_completion(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    headers = {"api-key": KEY}
    async with session.post(azure_url(fake, FAULT_429), json=body(), headers=headers) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        error = (await resp.json())["error"]
    assert error["code"] == "429"
    assert f"Azure OpenAI API version {VERSION}" in error["message"]
    async with session.post(azure_url(fake), json=body(stream=False), headers=headers) as resp:
        completion = await resp.json()
    assert completion["model"] == "gpt-4o-2024-08-06"
    assert completion["choices"][0]["message"]["content"] == fake.expected_reply(MESSAGES)
    assert "content_filter_results" in completion["choices"][0]


async def test_models_list(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{fake.base_url}/models", headers=AUTH) as resp:
        listing = await resp.json()
    assert listing["object"] == "list"
    assert [card["id"] for card in listing["data"]] == list(fake.models)
