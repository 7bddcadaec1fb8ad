"""The fake Anthropic's thinking, token counting, cache usage, echoed headers and recorded
replies, over real TCP with aiohttp's client."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes._text import split_pieces
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.test_fakes.test_fake_anthropic import HEADERS, MESSAGES, body, events, url

THINKING = {"type": "enabled", "budget_tokens": 1024}
THOUGHT = "Considering: hi there, fake"
SIGNATURE = base64.b64encode(hashlib.sha256(THOUGHT.encode()).digest()).decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(cache_read_tokens=3, cache_write_tokens=5) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_a_streamed_thinking_block_comes_first(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    request = body(max_tokens=2048, thinking=THINKING)
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        raw = await resp.read()
    decoded = [json.loads(data) for _, data in events(raw)]
    thought = split_pieces(THOUGHT)
    assert decoded[1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    }
    deltas = decoded[2 : 2 + len(thought)]
    assert [d["delta"] for d in deltas] == [
        {"type": "thinking_delta", "thinking": piece} for piece in thought
    ]
    assert decoded[2 + len(thought)]["delta"] == {"type": "signature_delta", "signature": SIGNATURE}
    assert decoded[3 + len(thought)] == {"type": "content_block_stop", "index": 0}
    assert decoded[4 + len(thought)]["index"] == 1
    assert decoded[4 + len(thought)]["content_block"]["type"] == "text"
    reply = fake.expected_pieces(MESSAGES)
    assert decoded[-2]["usage"]["output_tokens"] == len(thought) + len(reply)
    assert raw == fake.replies[-1]
    thinking = fake.thinking_of(request)
    assert thinking is not None
    assert (thinking.text, thinking.signature) == (THOUGHT, SIGNATURE)


async def test_a_whole_message_starts_with_its_thinking(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    request = body(stream=False, max_tokens=2048, thinking=THINKING)
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        raw = await resp.read()
    message = json.loads(raw)
    assert message["content"][0] == {
        "type": "thinking",
        "thinking": THOUGHT,
        "signature": SIGNATURE,
    }
    assert message["content"][1]["type"] == "text"
    assert message["usage"]["cache_read_input_tokens"] == 3
    assert message["usage"]["cache_creation_input_tokens"] == 5
    assert raw == fake.replies[-1]


@pytest.mark.parametrize(
    ("thinking", "max_tokens", "said"),
    [
        ({"type": "enabled", "budget_tokens": 512}, 2048, "greater than or equal to 1024"),
        ({"type": "enabled", "budget_tokens": 2048}, 2048, "must be greater than"),
        ({"type": "sometimes"}, 2048, "does not match any of the expected tags"),
    ],
)
async def test_thinking_is_validated(
    fake: FakeAnthropic,
    session: aiohttp.ClientSession,
    thinking: dict[str, Any],
    max_tokens: int,
    said: str,
) -> None:
    request = body(max_tokens=max_tokens, thinking=thinking)
    async with session.post(url(fake), json=request, headers=HEADERS) as resp:
        assert resp.status == 400
        error = await resp.json()
    assert said in error["error"]["message"]


async def test_count_tokens(fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    request = {"model": "claude-haiku-4-5", "messages": MESSAGES, "system": "Be brief."}
    headers = {**HEADERS, "anthropic-beta": "token-counting-2024-11-01"}
    async with session.post(f"{url(fake)}/count_tokens", json=request, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["x-fake-anthropic-beta"] == "token-counting-2024-11-01"
        assert await resp.json() == {"input_tokens": 2 + 3}
    async with session.post(
        f"{url(fake)}/count_tokens", json={**request, "max_tokens": 5}, headers=HEADERS
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"] == (
            "max_tokens: Extra inputs are not permitted"
        )
    async with session.post(
        f"{url(fake)}/count_tokens", json={**request, "model": "claude-nope"}, headers=HEADERS
    ) as resp:
        assert resp.status == 404
    assert fake.requests[0].path == "/v1/messages/count_tokens"


async def test_the_anthropic_headers_are_echoed_and_recorded(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    headers = {**HEADERS, "anthropic-beta": "a-2025-01-01,b-2025-02-02"}
    async with session.post(f"{url(fake)}?beta=true", json=body(), headers=headers) as resp:
        assert resp.headers["x-fake-anthropic-version"] == "2023-06-01"
        assert resp.headers["x-fake-anthropic-beta"] == "a-2025-01-01,b-2025-02-02"
        await resp.read()
    async with session.post(url(fake), json=body(stream=False), headers=HEADERS) as resp:
        assert resp.headers["x-fake-anthropic-version"] == "2023-06-01"
        assert "x-fake-anthropic-beta" not in resp.headers
    first = fake.requests[0]
    assert first.headers["anthropic-beta"] == "a-2025-01-01,b-2025-02-02"
    assert first.query == {"beta": "true"}
