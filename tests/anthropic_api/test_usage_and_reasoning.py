"""Anthropic's usage and thinking as chatwire reads them, over TCP: the numbers the fake
reported arrive unchanged on /v1/chat/completions and /v1/messages, streamed and not, and its
thinking is the canonical ``reasoning_content`` with its ``reasoning_signature``.

The canonical usage (OpenAI's shape) counts every input token in ``prompt_tokens``, those
read from the cache as ``prompt_tokens_details.cached_tokens`` and those written to it as
``cache_write_tokens``; relayed as sent, the usage is read from the stream on the way
(``Relayed``), its bytes untouched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from chatwire.families.anthropic_relay import Relayed, RelayedAnswer
from tests.anthropic_api._wired import USER, Wired, events
from tests.conftest import ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic

MODEL = "anthropic/claude-sonnet-4-5"
READ, WRITTEN = 3, 5
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
async def wired(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async with FakeAnthropic(cache_read_tokens=READ, cache_write_tokens=WRITTEN) as fake:
        settings = {"anthropic_base_url": fake.base_url, "anthropic_api_key": fake.api_key}
        yield Wired(fake, await make_server(stored_key=None, **settings))


def fake_usage(wired: Wired) -> tuple[int, int]:
    """The input and output tokens the fake reported for its last reply."""
    reply = wired.fake.replies[-1]
    if reply.startswith(b"event:"):
        found = events(reply)
        start = found[0][1]["message"]["usage"]
        return start["input_tokens"], found[-2][1]["usage"]["output_tokens"]
    usage = json.loads(reply)["usage"]
    return usage["input_tokens"], usage["output_tokens"]


def canonical(wired: Wired) -> dict[str, Any]:
    given, output = fake_usage(wired)
    prompt = given + READ + WRITTEN
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": READ, "cache_write_tokens": WRITTEN},
    }


def client(wired: Wired) -> openai.AsyncOpenAI:
    url = f"{wired.server.url}/v1"
    return openai.AsyncOpenAI(base_url=url, api_key=wired.server.token, max_retries=0)


async def test_chat_completions_usage_streamed_and_not(wired: Wired) -> None:
    async with client(wired) as chat:
        stream = await chat.chat.completions.create(
            model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.model_dump(exclude_none=True) == canonical(wired)
        whole = await chat.chat.completions.create(model=MODEL, messages=USER)
    assert whole.usage is not None
    assert whole.usage.model_dump(exclude_none=True) == canonical(wired)


async def test_messages_usage_streamed_and_not(wired: Wired) -> None:
    async with wired.client() as messages:
        async with messages.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
            final = await stream.get_final_message()
        given, output = fake_usage(wired)
        whole = await messages.messages.create(model=MODEL, max_tokens=64, messages=USER)
    for message in (final, whole):
        usage = message.usage
        assert (usage.input_tokens, usage.output_tokens) == (given, output)
        assert usage.cache_read_input_tokens == READ
        assert usage.cache_creation_input_tokens == WRITTEN
    assert fake_usage(wired) == (given, output)


@pytest.mark.parametrize("size", [1, 7, 64, 2**16])
async def test_a_relayed_stream_keeps_its_bytes_and_gives_its_usage(
    wired: Wired, size: int
) -> None:
    resp = await wired.post({"model": MODEL, "max_tokens": 64, "messages": USER, "stream": True})
    sent = wired.fake.replies[-1]
    assert resp.content == sent
    reader = Relayed()
    relayed = b"".join(reader.feed(sent[i : i + size]) for i in range(0, len(sent), size))
    assert relayed + reader.close() == sent
    assert reader.finished
    assert reader.usage == canonical(wired)


async def test_a_relayed_answer_keeps_its_bytes_and_gives_its_usage(wired: Wired) -> None:
    resp = await wired.post({"model": MODEL, "max_tokens": 64, "messages": USER})
    sent = wired.fake.replies[-1]
    assert resp.content == sent
    reader = RelayedAnswer()
    assert reader.feed(sent[:10]) + reader.feed(sent[10:]) == b""
    assert reader.close() == sent
    assert reader.usage == canonical(wired)


async def test_thinking_on_chat_completions_is_reasoning_content(wired: Wired) -> None:
    async with client(wired) as chat:
        stream = await chat.chat.completions.create(
            model=MODEL, messages=USER, stream=True, max_tokens=4000, reasoning_effort="low"
        )
        chunks = [chunk async for chunk in stream]
    sent = wired.fake.requests[-1].json
    # Within the reply's budget, as OpenAI counts reasoning in it.
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["max_tokens"] == 4000
    expected = wired.fake.thinking_of(sent)
    assert expected is not None
    deltas = [chunk.choices[0].delta.model_extra or {} for chunk in chunks if chunk.choices]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == expected.text
    signatures = [d["reasoning_signature"] for d in deltas if "reasoning_signature" in d]
    assert signatures == [expected.signature]
    texts = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(texts) == wired.fake.expected_reply(USER)
    # The signature once the thinking block ends, before the text.
    signed = next(i for i, d in enumerate(deltas) if "reasoning_signature" in d)
    assert signed < next(i for i, text in enumerate(texts) if text)
