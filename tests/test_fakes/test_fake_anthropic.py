"""The fake Anthropic Messages API, exercised over real TCP with aiohttp's client."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, Unpack

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
from tests.fakes.fake_anthropic import FakeAnthropic, FakeAnthropicOptions
from tests.test_fakes._helpers import arrival_gaps, collect, cuts_inside_characters, read_for

KEY = "fake-anthropic-key"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
MODEL = "claude-3-5-sonnet-20240620"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hi there, fake"}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


class MakeFake(Protocol):
    def __call__(self, **options: Unpack[FakeAnthropicOptions]) -> Awaitable[FakeAnthropic]: ...


@pytest.fixture
async def make_fake() -> AsyncIterator[MakeFake]:
    started: list[FakeAnthropic] = []

    async def make(**options: Unpack[FakeAnthropicOptions]) -> FakeAnthropic:
        server = FakeAnthropic(**options)
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


def url(fake: FakeAnthropic) -> str:
    assert fake.base_url is not None
    assert fake.base_url.endswith("/v1")
    return f"{fake.base_url}/messages"


def body(model: str = MODEL, *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 1024, "messages": MESSAGES, "stream": stream, **extra}


def events(raw: bytes) -> list[tuple[str, str]]:
    """(event name, data) of each event; every event is one event line and one data line."""
    blocks = raw.decode().split("\n\n")
    assert blocks[-1] == ""
    pairs = []
    for block in blocks[:-1]:
        name, data = block.split("\n")
        assert name.startswith("event: ")
        assert data.startswith("data: ")
        pairs.append((name.removeprefix("event: "), data.removeprefix("data: ")))
    return pairs


def texts(raw: bytes) -> list[str]:
    return [
        json.loads(data)["delta"]["text"]
        for name, data in events(raw)
        if name == "content_block_delta"
    ]


async def test_stream_has_anthropic_event_sequence(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    request = body(system=[{"type": "text", "text": "Be brief."}])
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["request-id"].startswith("req_")
        raw = await resp.read()
    pairs = events(raw)
    pieces = fake.expected_pieces(MESSAGES)
    names = [name for name, _ in pairs]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * len(pieces),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert dict(pairs)["ping"] == '{"type": "ping"}'  # Anthropic's spacing, unlike the rest
    decoded = [json.loads(data) for _, data in pairs]
    assert [item["type"] for item in decoded] == names
    start = decoded[0]["message"]
    assert re.fullmatch(r"msg_01\w{22}", start["id"])
    assert start["model"] == MODEL
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 2 + 3  # "Be brief." and "hi there, fake"
    assert decoded[1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert texts(raw) == pieces
    assert "".join(texts(raw)) == fake.expected_reply(MESSAGES) == "Hello! You said: hi there, fake"
    assert decoded[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": len(pieces)},
    }
    assert fake.streams_completed == 1


async def test_max_tokens_stops_with_max_tokens(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    async with session.post(url(fake), json=body(max_tokens=2), headers=HEADERS) as resp:
        raw = await resp.read()
    delta = json.loads(events(raw)[-2][1])
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"]["output_tokens"] == 2
    assert "".join(texts(raw)) == fake.expected_reply(MESSAGES, max_tokens=2) == "Hello! You"


async def test_non_stream_message(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(stream=False), headers=HEADERS) as resp:
        assert resp.status == 200
        message = await resp.json()
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": fake.expected_reply(MESSAGES)}]
    assert message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None
    assert message["usage"]["input_tokens"] == 3
    assert message["usage"]["output_tokens"] == len(fake.expected_pieces(MESSAGES))


@pytest.mark.parametrize(
    ("headers", "status", "kind", "message"),
    [
        (
            {"anthropic-version": "2023-06-01"},
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
        ({**HEADERS, "x-api-key": "wrong"}, 401, "authentication_error", "invalid x-api-key"),
        ({"x-api-key": KEY}, 400, "invalid_request_error", "anthropic-version: header is required"),
    ],
)
async def test_auth_and_version_headers(
    fake: FakeAnthropic,
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
    kind: str,
    message: str,
) -> None:
    async with session.post(url(fake), json=body(), headers=headers) as resp:
        assert resp.status == status
        assert resp.headers["x-should-retry"] == "false"
        error = await resp.json()
    assert error["type"] == "error"
    assert error["error"] == {"type": kind, "message": message}
    assert error["request_id"].startswith("req_")


ALTERNATION = 'messages: roles must alternate between "user" and "assistant", but found multiple'
SYSTEM_ROLE = (
    'messages: Unexpected role "system". The Messages API accepts a top-level `system`'
    ' parameter, not "system" as an input message role.'
)


def image(media_type: str, data: str) -> dict[str, Any]:
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"role": "user", "content": [{"type": "image", "source": source}]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"model": None}, "model: Field required"),
        ({"messages": [{"role": "system", "content": "x"}, *MESSAGES]}, SYSTEM_ROLE),
        (
            {"messages": [{"role": "assistant", "content": "x"}, *MESSAGES]},
            'messages: first message must use the "user" role',
        ),
        ({"messages": [*MESSAGES, *MESSAGES]}, f'{ALTERNATION} "user" roles in a row'),
        (
            {"messages": [*MESSAGES, {"role": "assistant", "content": "a"}] * 2},
            None,  # alternating, ending on the assistant's prefill: fine
        ),
        (
            {
                "messages": [
                    *MESSAGES,
                    {"role": "assistant", "content": "a"},
                    {"role": "assistant", "content": "b"},
                ]
            },
            f'{ALTERNATION} "assistant" roles in a row',
        ),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        ({"temperature": 1.5}, "temperature: range: 0..1"),
        ({"stream_options": {}}, "stream_options: Extra inputs are not permitted"),
        ({"system": {"text": "x"}}, "system: Input should be a valid list"),
        (
            {"messages": [{"role": "user", "content": ""}]},
            "messages.0: all messages must have non-empty content except for the optional"
            " final assistant message",
        ),
        (
            {"messages": [image("image/bmp", PNG)]},
            "messages.0.content.0.image.source.base64.media_type: Input should be"
            " 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
        ),
        (
            {"messages": [image("image/jpeg", PNG)]},
            "messages.0.content.0.image.source.base64.data: The image was specified using the"
            " image/jpeg media type, but does not appear to be a valid jpeg image",
        ),
    ],
)
async def test_validation_in_anthropic_words(
    fake: FakeAnthropic,
    session: aiohttp.ClientSession,
    changes: dict[str, Any],
    message: str | None,
) -> None:
    request = {key: value for key, value in {**body(), **changes}.items() if value is not None}
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        if message is None:
            assert resp.status == 200
            return
        assert resp.status == 400
        error = await resp.json()
    assert error["error"] == {"type": "invalid_request_error", "message": message}


async def test_system_blocks_and_images_are_accepted(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    content = [{"type": "text", "text": "what is this?"}, image("image/png", PNG)["content"][0]]
    request = body(
        system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": content}],
        temperature=0.3,
    )
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert "".join(texts(raw)) == "Hello! You said: what is this?"
    assert fake.requests[-1].json == request


async def test_not_json_is_400(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), data=b"{nope", headers=HEADERS) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_unknown_model_is_404(make_fake: MakeFake, session: aiohttp.ClientSession) -> None:
    fake = await make_fake(models=[MODEL])
    async with session.post(url(fake), json=body("claude-9"), headers=HEADERS) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == {
            "type": "not_found_error",
            "message": "model: claude-9",
        }
    async with session.post(url(fake), json=body(FAULT_500), headers=HEADERS) as resp:
        assert resp.status == 500  # fault models work whatever the list says


@pytest.mark.parametrize(
    ("model", "status", "kind"),
    [
        (FAULT_429, 429, "rate_limit_error"),
        (FAULT_500, 500, "api_error"),
        (FAULT_503, 529, "overloaded_error"),
    ],
)
async def test_refusing_faults(
    fake: FakeAnthropic, session: aiohttp.ClientSession, model: str, status: int, kind: str
) -> None:
    async with session.post(url(fake), json=body(model), headers=HEADERS) as resp:
        assert resp.status == status
        assert resp.headers["x-should-retry"] == "true"
        if status == 429:
            assert resp.headers["retry-after"] == "7"
            assert resp.headers["anthropic-ratelimit-requests-remaining"] == "0"
        error = await resp.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == kind


async def test_error_event_mid_stream(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_ERROR_MID), headers=HEADERS) as resp:
        assert resp.status == 200
        chunks, error = await collect(resp)
    assert error is None  # the body ends cleanly, without message_stop
    raw = b"".join(chunks)
    assert texts(raw) == fake.expected_pieces(MESSAGES)[:2]
    assert events(raw)[-1] == (
        "error",
        '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    )
    assert b"message_stop" not in raw
    assert fake.streams_completed == 0
    async with session.post(
        url(fake), json=body(FAULT_ERROR_MID, stream=False), headers=HEADERS
    ) as resp:
        assert resp.status == 529


async def test_drop_aborts_mid_stream(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_DROP), headers=HEADERS) as resp:
        assert resp.status == 200
        chunks, error = await collect(resp)
    assert isinstance(error, aiohttp.ClientPayloadError)
    raw = b"".join(chunks)
    assert texts(raw) == fake.expected_pieces(MESSAGES)[:2]
    assert b"message_stop" not in raw
    await fake.wait_for_connections(0)


async def test_stall_and_stall_mid(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await session.post(
            url(fake),
            json=body(FAULT_STALL),
            headers=HEADERS,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    await fake.wait_for_connections(0)
    async with session.post(url(fake), json=body(FAULT_STALL_MID), headers=HEADERS) as resp:
        raw, still_open = await read_for(resp, 0.2)
    assert still_open
    assert texts(raw) == fake.expected_pieces(MESSAGES)[:2]
    await fake.wait_for_connections(0)
    assert fake.active_requests == 0


async def test_split_utf8(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(FAULT_SPLIT_UTF8), headers=HEADERS) as resp:
        chunks, error = await collect(resp)
    assert error is None
    assert cuts_inside_characters(chunks)
    assert "".join(texts(b"".join(chunks))) == SPLIT_UTF8_REPLY


async def test_slow_model_spaces_pieces(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    async with session.post(url(fake), json=body(FAULT_SLOW), headers=HEADERS) as resp:
        gaps = await arrival_gaps(resp, b"event: content_block_delta")
    assert len(gaps) == len(fake.expected_pieces(MESSAGES)) - 1
    assert all(gap >= 0.04 for gap in gaps)


async def test_models_list_and_unknown_route(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    assert fake.base_url is not None
    async with session.get(f"{fake.base_url}/models", headers=HEADERS) as resp:
        listing = await resp.json()
    assert listing["data"][0] == {
        "type": "model",
        "id": fake.models[0],
        "display_name": listing["data"][0]["display_name"],
        "created_at": "2025-05-14T00:00:00Z",
    }
    assert listing["has_more"] is False
    async with session.post(f"{fake.base_url}/complete", json={}, headers=HEADERS) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["type"] == "not_found_error"


async def test_requests_are_recorded(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    async with session.post(url(fake), json=body(stream=False), headers=HEADERS) as resp:
        await resp.read()
    [recorded] = fake.requests
    assert recorded.path == "/v1/messages"
    assert recorded.headers["x-api-key"] == KEY
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert KEY not in repr(fake)
