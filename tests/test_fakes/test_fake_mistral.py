"""The fake Mistral upstream, exercised over real TCP with aiohttp's client."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol, Unpack

import aiohttp
import pytest

from tests.fakes.fake_mistral import (
    DEFAULT_MODELS,
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    FAULT_SLOW,
    FAULT_SPLIT_UTF8,
    FAULT_STALL,
    FAULT_STALL_MID,
    SPLIT_UTF8_REPLY,
    FakeMistral,
    FakeMistralOptions,
)

ROOT = Path(__file__).resolve().parents[2]  # where ``tests.fakes`` imports in a subprocess
AUTH = {"Authorization": "Bearer fake-mistral-key"}
HEX32 = re.compile(r"[0-9a-f]{32}")
MODEL = "mistral-small-latest"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi there, fake"},
]
RATE_HEADERS = (
    "x-ratelimit-limit-req-minute",
    "x-ratelimit-remaining-req-minute",
    "x-ratelimit-limit-tokens-minute",
    "x-ratelimit-remaining-tokens-minute",
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMistral]:
    async with FakeMistral() as server:
        yield server


class MakeFake(Protocol):
    def __call__(self, **options: Unpack[FakeMistralOptions]) -> Awaitable[FakeMistral]: ...


@pytest.fixture
async def make_fake() -> AsyncIterator[MakeFake]:
    """Started fakes with the given options, all stopped after the test."""
    started: list[FakeMistral] = []

    async def make(**options: Unpack[FakeMistralOptions]) -> FakeMistral:
        server = FakeMistral(**options)
        started.append(server)
        await server.start()
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def chat_url(fake: FakeMistral) -> str:
    assert fake.base_url is not None
    return f"{fake.base_url}/chat/completions"


def chat_body(model: str = MODEL, *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, "stream": stream, **extra}


def sse_data(raw: bytes) -> list[str]:
    """The data of each event; every event must be a lone data line."""
    events = raw.decode().split("\n\n")
    assert events[-1] == ""
    assert all(event.startswith("data: ") and "\n" not in event for event in events[:-1])
    return [event.removeprefix("data: ") for event in events[:-1]]


def deltas(raw: bytes) -> list[str]:
    data = sse_data(raw)
    return [json.loads(item)["choices"][0]["delta"]["content"] for item in data[:-1]]


async def collect(resp: aiohttp.ClientResponse) -> tuple[list[bytes], BaseException | None]:
    """The raw chunks as they arrived, and the error that ended the body, if any."""
    chunks: list[bytes] = []
    try:
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
    except aiohttp.ClientPayloadError as exc:
        return chunks, exc
    return chunks, None


async def test_stream_has_mistral_shape(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    async with session.post(chat_url(fake), json=chat_body(), headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert all(name in resp.headers for name in RATE_HEADERS)
        raw = await resp.read()
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert all(", " not in item and '": ' not in item for item in data)  # compact JSON
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    assert HEX32.fullmatch(chunks[0]["id"])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk["model"] == MODEL for chunk in chunks)
    assert all(abs(chunk["created"] - time.time()) < 60 for chunk in chunks)
    assert ["usage" in chunk for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    finishes = [chunk["choices"][0]["finish_reason"] for chunk in chunks]
    assert finishes == [None] * (len(chunks) - 1) + ["stop"]
    pieces = [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:]]
    assert pieces == fake.expected_pieces(MESSAGES)
    assert "".join(pieces) == fake.expected_reply(MESSAGES) == "Hello! You said: hi there, fake"
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == len(pieces)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert fake.streams_completed == 1


async def test_max_tokens_cuts_with_length(
    fake: FakeMistral, session: aiohttp.ClientSession
) -> None:
    body = chat_body(max_tokens=2)
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        raw = await resp.read()
    last = json.loads(sse_data(raw)[-2])
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["usage"]["completion_tokens"] == 2
    assert "".join(deltas(raw)) == fake.expected_reply(MESSAGES, max_tokens=2) == "Hello! You"


async def test_reply_option_streams_leading_whitespace(
    make_fake: MakeFake, session: aiohttp.ClientSession
) -> None:
    fake = await make_fake(reply="  \n Hi there")
    async with session.post(chat_url(fake), json=chat_body(), headers=AUTH) as resp:
        raw = await resp.read()
    assert deltas(raw) == ["", "  \n", " Hi", " there"]


async def test_non_stream_completion(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    body = chat_body(stream=False)
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        assert resp.status == 200
        completion = await resp.json()
    assert completion["object"] == "chat.completion"
    assert HEX32.fullmatch(completion["id"])
    assert completion["model"] == MODEL
    choice = completion["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == fake.expected_reply(MESSAGES)
    assert choice["finish_reason"] == "stop"
    assert set(completion["usage"]) == {"prompt_tokens", "total_tokens", "completion_tokens"}
    assert fake.streams_completed == 0


@pytest.mark.parametrize(
    ("shape", "expected"),
    [(0, {"message": "Unauthorized"}), (1, {"detail": "Unauthorized"})],
)
@pytest.mark.parametrize("headers", [{"Authorization": "Bearer wrong"}, {}])
async def test_unauthorized(
    make_fake: MakeFake,
    session: aiohttp.ClientSession,
    shape: int,
    expected: dict[str, str],
    headers: dict[str, str],
) -> None:
    fake = await make_fake(error_shape=shape)
    async with session.post(chat_url(fake), json=chat_body(), headers=headers) as resp:
        assert resp.status == 401
        body = await resp.json()
    async with session.get(f"{fake.base_url}/models", headers=headers) as resp:
        assert resp.status == 401
    request_id = body.pop("request_id", None)
    assert body == expected
    assert (request_id is not None) == (shape == 0)
    assert request_id is None or HEX32.fullmatch(request_id)


def detail_of(shape: int, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The pydantic entries, from whichever 422 generation the body is."""
    if shape == 0:
        assert body["object"] == "error"
        assert body["type"] == "invalid_request_error"
        assert body["code"] is None
        detail: list[dict[str, Any]] = body["message"]["detail"]
        return detail
    if shape == 1:
        assert body["type"] == "internal_error_proxy"
        assert body["code"] == "1000"
        assert isinstance(body["message"], str)
        detail = json.loads(body["message"])["detail"]
        return detail
    assert set(body) == {"detail"}
    detail = body["detail"]
    return detail


USER_WITH_NAME = [{"role": "user", "content": "hi", "name": "bob"}]


@pytest.mark.parametrize("shape", [0, 1, 2])
@pytest.mark.parametrize(
    ("extra", "loc", "value"),
    [
        ({"n": 1}, ["body", "n"], 1),
        ({"stream_options": {"include_usage": True}}, ["body", "stream_options"], None),
        ({"seed": 7}, ["body", "seed"], 7),
        ({"messages": USER_WITH_NAME}, ["body", "messages", 0, "user", "name"], "bob"),
    ],
)
async def test_unknown_fields_are_422(
    make_fake: MakeFake,
    session: aiohttp.ClientSession,
    shape: int,
    extra: dict[str, Any],
    loc: list[Any],
    value: Any,
) -> None:
    value = value if value is not None else next(iter(extra.values()))
    fake = await make_fake(error_shape=shape)
    async with session.post(chat_url(fake), json=chat_body(**extra), headers=AUTH) as resp:
        assert resp.status == 422
        body = await resp.json()
    assert detail_of(shape, body) == [
        {
            "type": "extra_forbidden",
            "loc": loc,
            "msg": "Extra inputs are not permitted",
            "input": value,
        }
    ]


@pytest.mark.parametrize(
    ("body", "kind", "loc"),
    [
        ({"messages": MESSAGES}, "missing", ["body", "model"]),
        ({"model": MODEL}, "missing", ["body", "messages"]),
        (
            {"model": MODEL, "messages": [{"content": "x"}]},
            "missing",
            ["body", "messages", 0, "role"],
        ),
        (
            {"model": MODEL, "messages": [{"role": "developer", "content": "x"}]},
            "literal_error",
            ["body", "messages", 0, "role"],
        ),
        (
            {"model": MODEL, "messages": [{"role": "assistant", "reasoning_content": "x"}]},
            "extra_forbidden",
            ["body", "messages", 0, "assistant", "reasoning_content"],
        ),
        ({"model": MODEL, "messages": [], "stream": "yes"}, "too_short", ["body", "messages"]),
        (["not", "an", "object"], "model_attributes_type", ["body"]),
    ],
)
async def test_invalid_bodies_are_422(
    fake: FakeMistral, session: aiohttp.ClientSession, body: Any, kind: str, loc: list[Any]
) -> None:
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        assert resp.status == 422
        detail = detail_of(0, await resp.json())
    assert detail[0]["type"] == kind
    assert detail[0]["loc"] == loc


async def test_invalid_json_is_422(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    async with session.post(chat_url(fake), data=b"{nope", headers=AUTH) as resp:
        assert resp.status == 422
        detail = detail_of(0, await resp.json())
    assert detail[0]["type"] == "json_invalid"
    assert fake.requests[-1].json is None
    assert fake.requests[-1].raw == b"{nope"


@pytest.mark.parametrize("last_role", ["assistant", "system"])
async def test_role_order_is_400(
    fake: FakeMistral, session: aiohttp.ClientSession, last_role: str
) -> None:
    messages = [*MESSAGES, {"role": last_role, "content": "x"}]
    body = {"model": MODEL, "messages": messages}
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        assert resp.status == 400
        assert await resp.json() == {
            "object": "error",
            "message": "Expected last role User or Tool (or Assistant with prefix True)"
            f" for serving but got {last_role}",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }


@pytest.mark.parametrize(
    "messages",
    [
        [*MESSAGES, {"role": "assistant", "content": "Sure", "prefix": True}],
        [{"role": "assistant", "content": "alone"}],
        [  # a tool message answers the assistant's call (Mistral checks both ends: 400s)
            *MESSAGES,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "abcDEF123", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "content": "42", "tool_call_id": "abcDEF123", "name": "f"},
        ],
    ],
)
async def test_allowed_last_roles(
    fake: FakeMistral, session: aiohttp.ClientSession, messages: list[dict[str, Any]]
) -> None:
    body = {"model": MODEL, "messages": messages}
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        assert resp.status == 200


async def test_invalid_model_is_400(make_fake: MakeFake, session: aiohttp.ClientSession) -> None:
    fake = await make_fake(models=["mistral-large-latest"])
    body = chat_body("mistral-medium-3.5")
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        assert resp.status == 400
        assert await resp.json() == {
            "object": "error",
            "message": "Invalid model: mistral-medium-3.5",
            "type": "invalid_model",
            "param": None,
            "code": "1500",
            "raw_status_code": 400,
        }
    async with session.post(chat_url(fake), json=chat_body(FAULT_503), headers=AUTH) as resp:
        assert resp.status == 503  # fault models work whatever the list says


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (0, {"message": "Requests rate limit exceeded"}),
        (
            1,
            {
                "object": "error",
                "message": "Rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
            },
        ),
    ],
)
async def test_rate_limited(
    make_fake: MakeFake, session: aiohttp.ClientSession, shape: int, expected: dict[str, Any]
) -> None:
    fake = await make_fake(error_shape=shape)
    async with session.post(chat_url(fake), json=chat_body(FAULT_429), headers=AUTH) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        assert all(name in resp.headers for name in RATE_HEADERS)
        assert resp.headers["x-ratelimit-remaining-req-minute"] == "0"
        assert await resp.json() == expected


@pytest.mark.parametrize("shape", [0, 1, 2])
async def test_server_error(
    make_fake: MakeFake, session: aiohttp.ClientSession, shape: int
) -> None:
    fake = await make_fake(error_shape=shape)
    async with session.post(chat_url(fake), json=chat_body(FAULT_500), headers=AUTH) as resp:
        assert resp.status == 500
        text = await resp.text()
    if shape == 2:
        assert text == "Internal Server Error"
        assert resp.content_type == "text/plain"
    else:
        assert json.loads(text)["object"] == "error"


async def test_service_unavailable(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    async with session.post(chat_url(fake), json=chat_body(FAULT_503), headers=AUTH) as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["type"] == "service_unavailable"
    assert body["message"] == "Service unavailable"


async def test_drop_aborts_mid_stream(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    async with session.post(chat_url(fake), json=chat_body(FAULT_DROP), headers=AUTH) as resp:
        assert resp.status == 200
        chunks, error = await collect(resp)
    assert isinstance(error, aiohttp.ClientPayloadError)
    received = b"".join(chunks)
    assert b"[DONE]" not in received
    assert deltas(received + b"data: [DONE]\n\n") == ["", *fake.expected_pieces(MESSAGES)[:2]]
    assert fake.streams_completed == 0
    await fake.wait_for_connections(0)


async def test_drop_without_stream(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    body = chat_body(FAULT_DROP, stream=False)
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_stall_ends_when_client_leaves(
    fake: FakeMistral, session: aiohttp.ClientSession
) -> None:
    timeout = aiohttp.ClientTimeout(total=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await session.post(
            chat_url(fake), json=chat_body(FAULT_STALL), headers=AUTH, timeout=timeout
        )
    await fake.wait_for_connections(0)
    assert fake.active_requests == 0


async def test_open_connections_counts_a_waiting_client(
    fake: FakeMistral, session: aiohttp.ClientSession
) -> None:
    request = asyncio.create_task(
        session.post(chat_url(fake), json=chat_body(FAULT_STALL), headers=AUTH)
    )
    await fake.wait_for_active_requests(1)
    assert fake.open_connections == 1
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await fake.wait_for_connections(0)


async def test_keep_alive_connection_counts_until_closed(fake: FakeMistral) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(chat_url(fake), json=chat_body(), headers=AUTH) as resp:
            await resp.read()
        assert fake.open_connections == 1  # pooled, idle
    await fake.wait_for_connections(0)


async def test_stall_mid_stream(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    async with session.post(chat_url(fake), json=chat_body(FAULT_STALL_MID), headers=AUTH) as resp:
        received: list[bytes] = []

        async def read_all() -> None:
            async for chunk in resp.content.iter_any():
                received.append(chunk)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read_all(), 0.3)
    assert b"".join(received).count(b"data: ") == 3  # role chunk and two pieces
    await fake.wait_for_connections(0)


async def test_stop_does_not_wait_for_stalled_clients(session: aiohttp.ClientSession) -> None:
    fake = FakeMistral()
    await fake.start()
    request = asyncio.create_task(
        session.post(chat_url(fake), json=chat_body(FAULT_STALL), headers=AUTH)
    )
    await fake.wait_for_active_requests(1)
    async with asyncio.timeout(2):
        await fake.stop()
    assert fake.open_connections == 0
    with pytest.raises(aiohttp.ClientError):
        await request


async def test_split_utf8_cuts_characters_across_reads(
    fake: FakeMistral, session: aiohttp.ClientSession
) -> None:
    body = chat_body(FAULT_SPLIT_UTF8)
    async with session.post(chat_url(fake), json=body, headers=AUTH) as resp:
        chunks, error = await collect(resp)
    assert error is None
    joined = b"".join(chunks)
    boundaries = [sum(len(chunk) for chunk in chunks[:i]) for i in range(1, len(chunks))]
    inside_a_character = [cut for cut in boundaries if 0x80 <= joined[cut] < 0xC0]
    assert inside_a_character, "no read ended inside a multi-byte character"
    assert "".join(deltas(joined)) == SPLIT_UTF8_REPLY
    assert fake.expected_reply(model=FAULT_SPLIT_UTF8) == SPLIT_UTF8_REPLY


async def test_requests_are_recorded(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    body = chat_body(stream=False, temperature=0.5)
    headers = {**AUTH, "X-Custom": "yes"}
    async with session.post(chat_url(fake), json=body, headers=headers) as resp:
        await resp.read()
    [recorded] = fake.requests
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.json == body
    assert recorded.headers["authorization"] == "Bearer fake-mistral-key"
    assert recorded.headers["x-custom"] == "yes"
    assert recorded.headers["content-type"] == "application/json"
    assert "fake-mistral-key" not in repr(fake)


async def arrival_times(
    session: aiohttp.ClientSession, fake: FakeMistral, model: str
) -> tuple[float, list[float]]:
    """When the headers came, and when each content chunk came, after sending."""
    started = time.monotonic()
    times: list[float] = []
    async with session.post(chat_url(fake), json=chat_body(model), headers=AUTH) as resp:
        headers_at = time.monotonic() - started
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if event != b"data: [DONE]" and json.loads(event[6:])["choices"][0]["delta"].get(
                    "content"
                ):
                    times.append(time.monotonic() - started)
    return headers_at, times


async def test_first_token_delay(make_fake: MakeFake, session: aiohttp.ClientSession) -> None:
    fake = await make_fake(first_token_delay=0.25)
    headers_at, times = await arrival_times(session, fake, MODEL)
    assert headers_at < 0.2
    assert times[0] >= 0.24


async def test_slow_model_delivers_incrementally(
    fake: FakeMistral, session: aiohttp.ClientSession
) -> None:
    _, times = await arrival_times(session, fake, FAULT_SLOW)
    assert len(times) == len(fake.expected_pieces(MESSAGES))
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.04 for gap in gaps)


async def test_models_list(fake: FakeMistral, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{fake.base_url}/models", headers=AUTH) as resp:
        assert resp.status == 200
        listing = await resp.json()
    assert listing["object"] == "list"
    assert [card["id"] for card in listing["data"]] == list(DEFAULT_MODELS)
    card = listing["data"][0]
    assert card["object"] == "model"
    assert card["aliases"] == []
    assert card["deprecation"] is None
    assert isinstance(card["max_context_length"], int)


def test_error_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="error_shape"):
        FakeMistral(error_shape=3)


async def test_run_serves_until_sigterm(session: aiohttp.ClientSession) -> None:
    code = "from tests.fakes.fake_mistral import run; run('127.0.0.1', 0, api_key='k')"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(5):
            base_url = (await process.stdout.readline()).decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        headers = {"Authorization": "Bearer k"}
        async with session.get(f"{base_url}/models", headers=headers) as resp:
            assert resp.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            assert await process.wait() == 0
