"""Tool calling through POST /v1/chat/completions, with the official openai SDK, to Mistral.

The fake Mistral calls the request's tool with arguments derived from its schema
(``fake.expected_tool_call``), sends the whole call in one chunk with Mistral's 9-character
id, and answers a tool result with ``"The tool said: <content>"``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai
import pytest

from tests.conftest import Running
from tests.fakes.fake_mistral import FakeMistral

MODEL = "mistral/mistral-small-latest"
MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city's name."},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
            },
        },
    }
]
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Lyon"},
]


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


def expected(fake: FakeMistral, messages: list[Any] = MESSAGES) -> tuple[str, dict[str, Any]]:
    name, arguments = fake.expected_tool_call({"messages": messages, "tools": TOOLS})
    assert (name, arguments) == ("get_weather", {"city": "Lyon", "unit": "celsius"})
    return name, arguments


async def test_non_streaming_tool_call(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        answer = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert MISTRAL_ID.fullmatch(call.id)
    assert (call.function.name, json.loads(call.function.arguments)) == expected(fake)
    assert answer.model == MODEL
    assert fake.requests[-1].json["tools"] == TOOLS


async def test_streaming_tool_call_arrives_as_mistral_sent_it(
    server: Running, fake: FakeMistral
) -> None:
    async with sdk(server) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    [delta] = deltas  # Mistral sends the whole call in one chunk
    assert delta.id is not None
    assert MISTRAL_ID.fullmatch(delta.id)
    assert delta.function is not None
    assert delta.function.name is not None
    assert delta.function.arguments is not None
    assert (delta.function.name, json.loads(delta.function.arguments)) == expected(fake)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]
    assert len({c.id for c in chunks}) == 1
    assert all(c.model == MODEL for c in chunks)


def accumulate(chunks: list[Any]) -> list[dict[str, Any]]:
    """Tool call deltas put together as OpenAI clients do: by ``index`` into a list."""
    calls: list[dict[str, Any]] = []
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or ()) if chunk.choices else ():
            assert isinstance(delta.index, int), f"a tool call delta without an index: {delta}"
            while len(calls) <= delta.index:
                calls.append({"id": "", "type": "", "name": "", "arguments": ""})
            call = calls[delta.index]
            call["id"] = delta.id or call["id"]
            call["type"] = delta.type or call["type"]
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
    return calls


# Mistral sends each tool call whole, without OpenAI's `index` and `type`; chatwire adds
# them so clients that gather calls by index (the SDK's own stream helper) work.


async def test_streaming_tool_call_accumulates_by_index(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]
    [call] = accumulate(chunks)
    assert call["type"] == "function"
    assert MISTRAL_ID.fullmatch(call["id"])
    assert (call["name"], json.loads(call["arguments"])) == expected(fake)


async def test_the_sdks_stream_helper_assembles_the_call(
    server: Running, fake: FakeMistral
) -> None:
    async with (
        sdk(server) as client,
        client.chat.completions.stream(model=MODEL, messages=MESSAGES, tools=TOOLS) as stream,
    ):
        final = await stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == expected(fake)


async def test_non_streaming_tool_call_has_openais_type(server: Running) -> None:
    async with sdk(server) as client:
        answer = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    [call] = answer.choices[0].message.tool_calls or []
    assert call.type == "function"


def assistant_turn(message: Any, by_hand: bool) -> Any:
    """The assistant's turn sent back: as OpenAI's docs build it, or the SDK's own object."""
    if not by_hand:
        return message  # messages.append(completion.choices[0].message)
    calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for call in message.tool_calls
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


@pytest.mark.parametrize("by_hand", [True, False], ids=["dict", "sdk-message"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_round_trip_with_the_tool_result(
    server: Running, fake: FakeMistral, stream: bool, by_hand: bool
) -> None:
    async with sdk(server) as client:
        first = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
        message = first.choices[0].message
        [call] = message.tool_calls or []
        assistant = assistant_turn(message, by_hand)
        result = {"role": "tool", "tool_call_id": call.id, "content": "12°C and sunny"}
        messages = [*MESSAGES, assistant, result]
        if stream:
            chunks = [
                chunk
                async for chunk in await client.chat.completions.create(
                    model=MODEL, messages=messages, tools=TOOLS, stream=True
                )
            ]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        else:
            answer = await client.chat.completions.create(
                model=MODEL, messages=messages, tools=TOOLS
            )
            text = answer.choices[0].message.content or ""
            finish = answer.choices[0].finish_reason
    assert "12°C and sunny" in text
    assert finish == "stop"
    sent = fake.requests[-1].json
    as_sent = assistant if by_hand else message.model_dump(exclude_unset=True)
    assert sent["messages"] == [*MESSAGES, as_sent, result]  # forwarded intact
    assert sent["messages"][2]["tool_calls"][0]["id"] == call.id
    assert sent["tools"] == TOOLS
    assert "tool_choice" not in sent
    assert text == fake.expected_reply(sent["messages"]) == "The tool said: 12°C and sunny"


async def test_tool_choice_none_and_named_reach_mistral(server: Running, fake: FakeMistral) -> None:
    second = {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        },
    }
    tools = [*TOOLS, second]
    named: Any = {"type": "function", "function": {"name": "get_time"}}
    async with sdk(server) as client:
        text = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=tools, tool_choice="none"
        )
        assert fake.requests[-1].json["tool_choice"] == "none"
        call = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=tools, tool_choice=named
        )
    assert fake.requests[-1].json["tool_choice"] == named
    assert text.choices[0].finish_reason == "stop"
    assert text.choices[0].message.content == fake.expected_reply(MESSAGES)
    [tool_call] = call.choices[0].message.tool_calls or []
    assert isinstance(tool_call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    request = {"messages": MESSAGES, "tools": tools, "tool_choice": named}
    assert fake.expected_tool_call(request) == ("get_time", {"zone": "Lyon"})
    assert tool_call.function.name == "get_time"
    assert json.loads(tool_call.function.arguments) == {"zone": "Lyon"}
