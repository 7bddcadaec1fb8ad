"""/v1/responses to OpenAI (through its chat completions) against the fake OpenAI, whose own
``/v1/responses`` follows OpenAI's documented event order: chatwire's events for the same
reply come in the same order with the same shapes, and the usage OpenAI reported arrives
unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_openai import FakeOpenAI

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def served(make_server: ServerFactory, upstream: FakeOpenAI) -> Running:
    return await make_server(
        openai_base_url=upstream.base_url, openai_api_key=str(upstream.api_key)
    )


def client_of(base_url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)


def shapes(events: list[Any]) -> list[tuple[str, tuple[str, ...]]]:
    """Each event's type and its fields, as they came."""
    return [(e.type, tuple(sorted(e.model_dump(exclude_unset=True)))) for e in events]


def runs(events: list[Any]) -> list[str]:
    """The event types, a run of one type as one."""
    kinds = [e.type for e in events]
    return [kind for index, kind in enumerate(kinds) if index == 0 or kinds[index - 1] != kind]


async def events_of(client: openai.AsyncOpenAI, model: str, **request: Any) -> list[Any]:
    stream = await client.responses.create(model=model, stream=True, **request)
    return [event async for event in stream]


@pytest.mark.parametrize(
    "request_",
    [
        {"input": "Say hello to the gateway"},
        {"input": "Say hello to the gateway", "max_output_tokens": 3},
        {"input": "Lyon", "tools": [WEATHER]},
    ],
    ids=["text", "cut", "tool"],
)
async def test_the_same_events_as_openais_own(
    served: Running, upstream: FakeOpenAI, request_: dict[str, Any]
) -> None:
    async with client_of(str(upstream.base_url), str(upstream.api_key)) as direct:
        theirs = await events_of(direct, "gpt-4o-mini", **request_)
    async with client_of(f"{served.url}/v1", served.token) as client:
        ours = await events_of(client, "openai/gpt-4o-mini", **request_)
    # The same kinds in the same order; a tool call's arguments come whole through the chat
    # family (in one delta), as OpenAI's own stream cuts them in many.
    assert runs(ours) == runs(theirs)
    assert [e.sequence_number for e in ours] == list(range(len(ours)))
    mine, its = dict(shapes(ours)), dict(shapes(theirs))
    for kind, fields in its.items():
        assert set(fields) <= set(mine[kind]), kind
    final, expected = ours[-1].response, theirs[-1].response
    assert final.status == expected.status
    assert final.output_text == expected.output_text
    assert [item.type for item in final.output] == [item.type for item in expected.output]
    if request_.get("tools"):
        [call], [their_call] = final.output, expected.output
        assert json.loads(call.arguments) == json.loads(their_call.arguments)


async def test_openais_usage_arrives_unchanged(served: Running, upstream: FakeOpenAI) -> None:
    async with client_of(f"{served.url}/v1", served.token) as client:
        response = await client.responses.create(model="openai/gpt-4o-mini", input="Say hello")
    sent = upstream.requests[-1].json
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    prompt = 2  # the fake counts a token per word
    assert response.usage is not None
    assert response.usage.model_dump(exclude_none=True) == {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": len(upstream.expected_pieces(sent["messages"])),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + len(upstream.expected_pieces(sent["messages"])),
    }
