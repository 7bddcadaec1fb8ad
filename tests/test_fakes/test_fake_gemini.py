"""The fake Gemini API, exercised over real TCP with aiohttp's client."""

from __future__ import annotations

import asyncio
import json
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
from tests.fakes.fake_gemini import FakeGemini
from tests.test_fakes._helpers import arrival_gaps, collect, cuts_inside_characters, read_for

KEY = "fake-gemini-key"
HEADERS = {"x-goog-api-key": KEY}
MODEL = "gemini-2.0-flash"
CONTENTS: list[dict[str, Any]] = [
    {"role": "user", "parts": [{"text": "first question"}]},
    {"role": "model", "parts": [{"text": "first answer"}]},
    {"role": "user", "parts": [{"text": "hi there, fake"}]},
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def url(fake: FakeGemini, model: str = MODEL, method: str = "streamGenerateContent") -> str:
    assert fake.base_url is not None
    assert fake.base_url.endswith("/v1beta")
    query = "?alt=sse" if method == "streamGenerateContent" else ""
    return f"{fake.base_url}/models/{model}:{method}{query}"


def body(**extra: Any) -> dict[str, Any]:
    return {"contents": CONTENTS, **extra}


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    """Each event is one ``data:`` line ended by CRLF CRLF, as Google sends them."""
    events = raw.decode().split("\r\n\r\n")
    assert events[-1] == ""
    assert all(event.startswith("data: ") and "\n" not in event for event in events[:-1])
    return [json.loads(event.removeprefix("data: ")) for event in events[:-1]]


def text_of(chunk: dict[str, Any]) -> str:
    return "".join(part["text"] for part in chunk["candidates"][0]["content"]["parts"])


async def test_sse_stream_has_gemini_shape(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    request = body(systemInstruction={"parts": [{"text": "Be brief."}]})
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        raw = await resp.read()
    assert b"[DONE]" not in raw
    assert b'{"candidates": [{"content": {"parts": [{"text": ' in raw  # Google's spacing
    chunks = sse_chunks(raw)
    pieces = fake.expected_pieces(CONTENTS)
    assert [text_of(chunk) for chunk in chunks] == pieces
    assert "".join(pieces) == fake.expected_reply(CONTENTS) == "Hello! You said: hi there, fake"
    candidates = [chunk["candidates"][0] for chunk in chunks]
    assert all(candidate["content"]["role"] == "model" for candidate in candidates)
    assert all(candidate["index"] == 0 for candidate in candidates)
    assert ["finishReason" in candidate for candidate in candidates] == [False] * (
        len(chunks) - 1
    ) + [True]
    assert candidates[-1]["finishReason"] == "STOP"
    prompt = 2 + 2 + 2 + 3  # system, then each turn
    counts = [chunk["usageMetadata"]["candidatesTokenCount"] for chunk in chunks]
    assert counts == list(range(1, len(pieces) + 1))  # cumulative
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": prompt,
        "candidatesTokenCount": len(pieces),
        "totalTokenCount": prompt + len(pieces),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    assert {chunk["modelVersion"] for chunk in chunks} == {MODEL}
    assert len({chunk["responseId"] for chunk in chunks}) == 1
    assert fake.streams_completed == 1


async def test_key_in_query_parameter(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{url(fake)}&key={KEY}", json=body()) as resp:
        assert resp.status == 200
        await resp.read()
    assert fake.requests[-1].query == {"alt": "sse", "key": KEY}


async def test_snake_case_fields_and_max_output_tokens(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    request = {
        "contents": [{"parts": [{"text": "no role means user"}]}],
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "generation_config": {"max_output_tokens": 2, "temperature": 0.2},
    }
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        chunks = sse_chunks(await resp.read())
    assert "".join(text_of(chunk) for chunk in chunks) == "Hello! You"
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_generate_content_is_one_pretty_body(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        url(fake, method="generateContent"), json=body(), headers=HEADERS
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        text = await resp.text()
    assert text.startswith('{\n  "candidates": [\n')
    response = json.loads(text)
    assert text_of(response) == fake.expected_reply(CONTENTS)
    assert response["candidates"][0]["finishReason"] == "STOP"
    assert response["usageMetadata"]["candidatesTokenCount"] == len(fake.expected_pieces(CONTENTS))


async def test_stream_without_alt_is_a_json_array(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    assert fake.base_url is not None
    target = f"{fake.base_url}/models/{MODEL}:streamGenerateContent"
    async with session.post(target, json=body(), headers=HEADERS) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        chunks = json.loads(await resp.text())
    assert "".join(text_of(chunk) for chunk in chunks) == fake.expected_reply(CONTENTS)


def error_of(text: str) -> dict[str, Any]:
    assert text.startswith('{\n  "error": {\n')  # pretty-printed, as Google sends errors
    error: dict[str, Any] = json.loads(text)["error"]
    return error


async def test_missing_key_is_403(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body()) as resp:
        assert resp.status == 403
        error = error_of(await resp.text())
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"].startswith("Method doesn't allow unregistered callers")


@pytest.mark.parametrize("where", ["header", "query"])
async def test_bad_key_is_400_api_key_invalid(
    fake: FakeGemini, session: aiohttp.ClientSession, where: str
) -> None:
    target, headers = url(fake), {"x-goog-api-key": "wrong"}
    if where == "query":
        target, headers = f"{target}&key=wrong", {}
    async with session.post(target, json=body(), headers=headers) as resp:
        assert resp.status == 400
        error = error_of(await resp.text())
    assert error["code"] == 400
    assert error["message"] == "API key not valid. Please pass a valid API key."
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


async def test_unknown_model_is_404(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake, "gemini-pro"), json=body(), headers=HEADERS) as resp:
        assert resp.status == 404
        error = error_of(await resp.text())
    assert error["status"] == "NOT_FOUND"
    assert error["message"] == (
        "models/gemini-pro is not found for API version v1beta, or is not supported for"
        " streamGenerateContent. Call ListModels to see the list of available models and"
        " their supported methods."
    )


@pytest.mark.parametrize(
    ("request_body", "message", "bad_request"),
    [
        (
            body(stream=True),
            'Invalid JSON payload received. Unknown name "stream": Cannot find field.',
            True,
        ),
        (
            {"contents": [{"role": "user", "content": "hi"}]},
            "Invalid JSON payload received. Unknown name \"content\" at 'contents[0]':"
            " Cannot find field.",
            True,
        ),
        (
            body(generationConfig={"temperature": "hot"}),
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
            True,
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"inline_data": {"mime_type": "image/png", "data": "@@"}}],
                    }
                ]
            },
            "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES),"
            ' Base64 decoding failed for "@@"',
            True,
        ),
        (
            {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]},
            "Please use a valid role: user, model.",
            False,
        ),
        ({"contents": []}, "* GenerateContentRequest.contents: contents is not specified\n", False),
        (
            {"contents": [{"role": "user", "parts": []}]},
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n",
            False,
        ),
    ],
)
async def test_invalid_requests_are_400(
    fake: FakeGemini,
    session: aiohttp.ClientSession,
    request_body: dict[str, Any],
    message: str,
    bad_request: bool,
) -> None:
    async with session.post(url(fake), json=request_body, headers=HEADERS) as resp:
        assert resp.status == 400
        error = error_of(await resp.text())
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == message
    if bad_request:
        assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        assert error["details"][0]["fieldViolations"][0]["description"] == message


async def test_images_are_accepted(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    parts = [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
    ]
    async with session.post(
        url(fake), json={"contents": [{"role": "user", "parts": parts}]}, headers=HEADERS
    ) as resp:
        assert resp.status == 200
        chunks = sse_chunks(await resp.read())
    assert "".join(text_of(chunk) for chunk in chunks) == "Hello! You said: what is this?"


@pytest.mark.parametrize(
    ("model", "code", "status"),
    [
        (FAULT_429, 429, "RESOURCE_EXHAUSTED"),
        (FAULT_500, 500, "INTERNAL"),
        (FAULT_503, 503, "UNAVAILABLE"),
    ],
)
async def test_refusing_faults(
    fake: FakeGemini, session: aiohttp.ClientSession, model: str, code: int, status: str
) -> None:
    async with session.post(url(fake, model), json=body(), headers=HEADERS) as resp:
        assert resp.status == code
        assert "Retry-After" not in resp.headers  # Google puts the delay in RetryInfo
        error = error_of(await resp.text())
    assert (error["code"], error["status"]) == (code, status)
    if code == 429:
        retry = [detail for detail in error["details"] if detail["@type"].endswith("RetryInfo")]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
    if code == 503:
        assert error["message"] == "The model is overloaded. Please try again later."


async def test_drop_aborts_mid_stream(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake, FAULT_DROP), json=body(), headers=HEADERS) as resp:
        chunks, error = await collect(resp)
    assert isinstance(error, aiohttp.ClientPayloadError)
    sent = sse_chunks(b"".join(chunks))
    assert [text_of(chunk) for chunk in sent] == fake.expected_pieces(CONTENTS)[:2]
    assert all("finishReason" not in chunk["candidates"][0] for chunk in sent)
    await fake.wait_for_connections(0)


async def test_stall_and_stall_mid(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await session.post(
            url(fake, FAULT_STALL),
            json=body(),
            headers=HEADERS,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    await fake.wait_for_connections(0)
    async with session.post(url(fake, FAULT_STALL_MID), json=body(), headers=HEADERS) as resp:
        raw, still_open = await read_for(resp, 0.2)
    assert still_open
    assert len(sse_chunks(raw)) == 2
    await fake.wait_for_connections(0)


async def test_split_utf8(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake, FAULT_SPLIT_UTF8), json=body(), headers=HEADERS) as resp:
        chunks, error = await collect(resp)
    assert error is None
    assert cuts_inside_characters(chunks)
    assert "".join(text_of(chunk) for chunk in sse_chunks(b"".join(chunks))) == SPLIT_UTF8_REPLY
    assert fake.expected_reply(CONTENTS, model=FAULT_SPLIT_UTF8) == SPLIT_UTF8_REPLY


async def test_slow_model_spaces_pieces(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake, FAULT_SLOW), json=body(), headers=HEADERS) as resp:
        gaps = await arrival_gaps(resp, b"data: ")
    assert len(gaps) == len(fake.expected_pieces(CONTENTS)) - 1
    assert all(gap >= 0.04 for gap in gaps)


async def test_models_list(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{fake.base_url}/models", headers=HEADERS) as resp:
        listing = await resp.json()
    assert listing["models"][0]["name"] == f"models/{fake.models[0]}"
    assert "generateContent" in listing["models"][0]["supportedGenerationMethods"]
