"""The fake Ollama server, exercised over real TCP with aiohttp's client."""

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
    FAULT_ERROR_MID,
    FAULT_SLOW,
    FAULT_SPLIT_UTF8,
    FAULT_STALL,
    FAULT_STALL_MID,
    SPLIT_UTF8_REPLY,
)
from tests.fakes.fake_ollama import FakeOllama
from tests.test_fakes._helpers import arrival_gaps, collect, cuts_inside_characters, read_for

MODEL = "llama3.2"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi there, fake"},
]
GO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def url(fake: FakeOllama, path: str = "/api/chat") -> str:
    assert fake.base_url is not None
    return f"{fake.base_url}{path}"


def body(model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


def lines(raw: bytes) -> list[dict[str, Any]]:
    text = raw.decode()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.removesuffix("\n").split("\n")]


def contents(objects: list[dict[str, Any]]) -> list[str]:
    return [item["message"]["content"] for item in objects if not item["done"]]


async def test_ndjson_stream_by_default(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body()) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        raw = await resp.read()
    objects = lines(raw)
    pieces = fake.expected_pieces(MESSAGES)
    assert [item["done"] for item in objects] == [False] * len(pieces) + [True]
    assert all(item["model"] == MODEL for item in objects)
    assert all(GO_TIME.fullmatch(item["created_at"]) for item in objects)
    assert all(item["message"]["role"] == "assistant" for item in objects)
    assert contents(objects) == pieces
    assert "".join(pieces) == fake.expected_reply(MESSAGES) == "Hello! You said: hi there, fake"
    final = objects[-1]
    assert list(final) == [
        "model",
        "created_at",
        "message",
        "done_reason",
        "done",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ]
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["done_reason"] == "stop"
    assert final["prompt_eval_count"] == 2 + 3
    assert final["eval_count"] == len(pieces)
    durations = [final[name] for name in ("total_duration", "load_duration", "eval_duration")]
    assert all(isinstance(value, int) and value > 0 for value in durations)
    assert fake.streams_completed == 1


async def test_non_stream_is_one_object(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    request = body(stream=False, options={"num_predict": 2, "temperature": 0.2})
    async with session.post(url(fake), json=request) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        reply = await resp.json()
    assert reply["message"] == {"role": "assistant", "content": "Hello! You"}
    assert reply["done"] is True
    assert reply["done_reason"] == "length"
    assert reply["eval_count"] == 2


async def test_json_is_written_the_go_way(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    request = {"model": MODEL, "messages": [{"role": "user", "content": "<b> & é"}]}
    async with session.post(url(fake), json=request) as resp:
        raw = await resp.read()
    assert b"\\u003cb\\u003e" in raw
    assert b"\\u0026" in raw
    assert "é".encode() in raw


async def test_tags_version_and_root(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    async with session.get(url(fake, "/api/tags")) as resp:
        models = (await resp.json())["models"]
    assert [model["name"] for model in models] == list(fake.models)
    assert set(models[0]) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert models[0]["details"]["format"] == "gguf"
    async with session.get(url(fake, "/api/version")) as resp:
        assert "version" in await resp.json()
    async with session.get(url(fake, "/")) as resp:
        assert await resp.text() == "Ollama is running"
    async with session.post(url(fake, "/api/nope"), json={}) as resp:
        assert resp.status == 404
        assert await resp.text() == "404 page not found"


@pytest.mark.parametrize(
    ("model", "status"),
    [("llama3.2", 200), ("llama3.2:latest", 200), ("llama3.1:8b", 200), ("llama3.1", 404)],
)
async def test_a_name_without_tag_means_latest(
    fake: FakeOllama, session: aiohttp.ClientSession, model: str, status: int
) -> None:
    async with session.post(url(fake), json=body(model, stream=False)) as resp:
        assert resp.status == status


async def test_unknown_model_is_404(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body("phi9")) as resp:
        assert resp.status == 404
        assert await resp.text() == '{"error":"model \\"phi9\\" not found, try pulling it first"}'
    async with session.post(url(fake), json=body(FAULT_429)) as resp:
        assert resp.status == 404  # Ollama never rate limits: not a fault model here


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "missing request body"),
        (b"{nope", "invalid character 'n' looking for beginning of object key string"),
        (
            json.dumps({"model": MODEL, "messages": "hi"}).encode(),
            "json: cannot unmarshal string into Go struct field ChatRequest.messages"
            " of type []api.Message",
        ),
        (
            json.dumps({"model": MODEL, "stream": "yes", "messages": []}).encode(),
            "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool",
        ),
        (json.dumps({"messages": MESSAGES}).encode(), "model is required"),
        (
            json.dumps(
                {"model": MODEL, "messages": [{"role": "user", "content": "x", "images": ["!!"]}]}
            ).encode(),
            "illegal base64 data at input byte 0",
        ),
    ],
)
async def test_bad_requests_are_400(
    fake: FakeOllama, session: aiohttp.ClientSession, data: bytes, message: str
) -> None:
    async with session.post(url(fake), data=data) as resp:
        assert resp.status == 400
        assert await resp.json() == {"error": message}


async def test_images_are_accepted(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    message = {"role": "user", "content": "what is this?", "images": ["iVBORw0KGgo="]}
    async with session.post(url(fake), json=body(messages=[message], stream=False)) as resp:
        assert resp.status == 200
        assert (await resp.json())["message"]["content"] == "Hello! You said: what is this?"


async def test_no_messages_loads_the_model(
    fake: FakeOllama, session: aiohttp.ClientSession
) -> None:
    async with session.post(url(fake), json=body(messages=[])) as resp:
        reply = await resp.json()
    assert reply["done_reason"] == "load"
    assert reply["done"] is True
    assert reply["message"]["content"] == ""


@pytest.mark.parametrize(
    ("model", "status", "message"),
    [
        (FAULT_500, 500, "llama runner process has terminated: exit status 2"),
        (FAULT_503, 503, "server busy, please try again.  maximum pending requests exceeded"),
    ],
)
async def test_refusing_faults(
    fake: FakeOllama, session: aiohttp.ClientSession, model: str, status: int, message: str
) -> None:
    async with session.post(url(fake), json=body(model)) as resp:
        assert resp.status == status
        assert await resp.json() == {"error": message}


async def test_error_line_mid_stream(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_ERROR_MID)) as resp:
        assert resp.status == 200
        chunks, error = await collect(resp)
    assert error is None
    objects = lines(b"".join(chunks))
    assert contents(objects[:-1]) == fake.expected_pieces(MESSAGES)[:2]
    assert objects[-1] == {
        "error": "an error was encountered while running the model: unexpected EOF"
    }
    async with session.post(url(fake), json=body(FAULT_ERROR_MID, stream=False)) as resp:
        assert resp.status == 500


async def test_drop_aborts_mid_stream(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_DROP)) as resp:
        chunks, error = await collect(resp)
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert contents(lines(b"".join(chunks))) == fake.expected_pieces(MESSAGES)[:2]
    async with session.post(url(fake), json=body(FAULT_DROP, stream=False)) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    await fake.wait_for_connections(0)


async def test_stall_and_stall_mid(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await session.post(
            url(fake), json=body(FAULT_STALL), timeout=aiohttp.ClientTimeout(total=0.2)
        )
    await fake.wait_for_connections(0)
    async with session.post(url(fake), json=body(FAULT_STALL_MID)) as resp:
        raw, still_open = await read_for(resp, 0.2)
    assert still_open
    assert len(lines(raw)) == 2
    await fake.wait_for_connections(0)


async def test_split_utf8(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_SPLIT_UTF8)) as resp:
        chunks, error = await collect(resp)
    assert error is None
    assert cuts_inside_characters(chunks)
    assert "".join(contents(lines(b"".join(chunks)))) == SPLIT_UTF8_REPLY


async def test_slow_model_spaces_pieces(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_SLOW)) as resp:
        gaps = await arrival_gaps(resp, b'"done":false')
    assert len(gaps) == len(fake.expected_pieces(MESSAGES)) - 1
    assert all(gap >= 0.04 for gap in gaps)


async def test_a_key_makes_it_an_authenticating_proxy(session: aiohttp.ClientSession) -> None:
    async with FakeOllama(api_key="secret") as fake:
        async with session.post(url(fake), json=body()) as resp:
            assert resp.status == 401
            assert await resp.json() == {"error": "unauthorized"}
        headers = {"Authorization": "Bearer secret"}
        async with session.post(url(fake), json=body(), headers=headers) as resp:
            assert resp.status == 200
            await resp.read()
        assert fake.requests[-1].headers["authorization"] == "Bearer secret"
