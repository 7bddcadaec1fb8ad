"""/v1 for the OpenAI-compatible family proper (``openai/<model>``, the fake OpenAI), with the
official openai SDK, the mistralai SDK and LangChain's ChatOpenAI, changed only in base URL
and key. OpenAI streams tool-call arguments in pieces and its usage in a chunk of its own
after the finish reason (when asked, which chatwire always does)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_openai import ChatOpenAI
from mistralai.client import Mistral
from mistralai.client.utils import BackoffStrategy, RetryConfig
from pydantic import SecretStr

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_openai import FakeOpenAI
from tests.openai_api.test_tools import TOOLS, accumulate
from tests.scripted import END, SSE_HEAD, Pause, ScriptedUpstream, Step, delta, event

MODEL = "openai/gpt-4o"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Say hello to the gateway"},
]
ASK: list[Any] = [{"role": "user", "content": "Lyon"}]
NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)


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


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


async def test_openai_sdk_streams_text_and_usage(served: Running, upstream: FakeOpenAI) -> None:
    async with sdk(served) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstream.expected_reply(MESSAGES)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


async def test_openai_sdk_tool_call_sent_in_pieces_arrives_whole_then_the_round_trip(
    served: Running, upstream: FakeOpenAI
) -> None:
    async with sdk(served) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=ASK, tools=TOOLS, stream=True
        )
        chunks = [c async for c in stream]
        [call] = accumulate(chunks)
        # OpenAI sends the arguments in several deltas (as the fake does); the client gets
        # the call whole in one, with its id and name, as Mistral sends calls (the Mistral
        # SDKs refuse a tool-call delta without the function's name).
        pieces = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
        assert len(pieces) == 1
        assert pieces[0].id == call["id"]
        assert pieces[0].function is not None
        assert pieces[0].function.name == call["name"]
        name, arguments = upstream.expected_tool_call({"messages": ASK, "tools": TOOLS})
        assert (call["name"], json.loads(call["arguments"])) == (name, arguments)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert [f for f in finishes if f] == ["tool_calls"]
        answer = await client.chat.completions.create(
            model=MODEL,
            tools=TOOLS,
            messages=[
                *ASK,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": call["arguments"]},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
            ],
        )
    assert answer.choices[0].message.content == "The tool said: sunny"


async def test_without_include_usage_the_usage_rides_on_the_finish_chunk(
    served: Running, upstream: FakeOpenAI
) -> None:
    async with sdk(served) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)  # no usage-only chunk the client did not ask for
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])


async def test_the_finish_chunk_waits_for_usage_sent_in_a_later_read(
    make_server: ServerFactory,
) -> None:
    usage = b'{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    usage += b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    script: list[Step] = [SSE_HEAD, delta("Hi"), delta(" there", finish="stop"), Pause(0.1)]
    scripted = ScriptedUpstream([*script, event(usage), event(b"[DONE]"), END])
    await scripted.start()
    try:
        server = await make_server(openai_base_url=scripted.base_url, openai_api_key="k")
        async with sdk(server) as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            )
            chunks = [c async for c in stream]
    finally:
        await scripted.stop()
    assert [c.choices[0].delta.content for c in chunks] == ["Hi", " there"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 5


async def test_mistralai_sdk_complete_and_stream(served: Running, upstream: FakeOpenAI) -> None:
    async with Mistral(
        api_key=served.token, server_url=served.url, retry_config=NO_RETRIES
    ) as client:
        answer = await client.chat.complete_async(model=MODEL, messages=MESSAGES)
        stream = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
        async with stream:
            events = [event async for event in stream]
    assert answer.choices[0].message.content == upstream.expected_reply(MESSAGES)
    assert answer.usage.completion_tokens
    text = "".join(
        c.delta.content or ""
        for e in events
        for c in e.data.choices
        if isinstance(c.delta.content, str | None)
    )
    assert text == upstream.expected_reply(MESSAGES)
    assert events[-1].data.choices[0].finish_reason == "stop"
    assert events[-1].data.usage is not None
    assert events[-1].data.usage.completion_tokens


async def test_langchain_streams_and_calls_tools(served: Running, upstream: FakeOpenAI) -> None:
    llm = ChatOpenAI(
        base_url=f"{served.url}/v1", api_key=SecretStr(served.token), model=MODEL, max_retries=0
    )
    chunks = [c async for c in llm.astream([HumanMessage("Say hello to the gateway")])]
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.text for c in chunks) == upstream.expected_reply(
        [{"role": "user", "content": "Say hello to the gateway"}]
    )
    answer = await llm.bind_tools(TOOLS).ainvoke([HumanMessage("Lyon")])
    [call] = answer.tool_calls
    name, arguments = upstream.expected_tool_call({"messages": ASK, "tools": TOOLS})
    assert (call["name"], call["args"]) == (name, arguments)


async def test_with_n_2_every_choice_finishes_and_the_usage_rides_on_the_last(
    make_server: ServerFactory,
) -> None:
    def finish(index: int, reason: str) -> bytes:
        return event(
            b'{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":'
            b'[{"index":%d,"delta":{},"finish_reason":"%s"}]}' % (index, reason.encode())
        )

    usage = b'{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    usage += b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
    script: list[Step] = [SSE_HEAD, delta("A"), finish(0, "stop"), Pause(0.05)]
    script += [finish(1, "length"), Pause(0.05), event(usage), event(b"[DONE]"), END]
    scripted = ScriptedUpstream(script)
    await scripted.start()
    try:
        server = await make_server(openai_base_url=scripted.base_url, openai_api_key="k")
        async with sdk(server) as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, n=2
            )
            chunks = [c async for c in stream]
    finally:
        await scripted.stop()
    finishes = [(c.choices[0].index, c.choices[0].finish_reason) for c in chunks if c.choices]
    assert finishes == [(0, None), (0, "stop"), (1, "length")]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])
