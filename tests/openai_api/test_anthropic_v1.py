"""/v1/chat/completions to Anthropic's Messages API with the official clients, over TCP.

The openai SDK, the mistralai SDK and LangChain's ChatOpenAI, each changed only in its base
URL and key, against a running chatwire pointed at the fake Anthropic. The fake uses a tool
with input derived from the tool's schema (``fake.expected_tool_use``), says a sentence first
under tool_choice auto, and answers a tool result with ``"The tool said: <content>"``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.messages import ToolMessage as LangChainToolMessage
from langchain_openai import ChatOpenAI
from mistralai.client import Mistral, errors
from mistralai.client.utils import BackoffStrategy, RetryConfig
from pydantic import SecretStr

from tests.conftest import Running, ServerFactory
from tests.fakes._faults import FAULT_SLOW, SLOW_TOKEN_DELAY
from tests.fakes.fake_anthropic import FakeAnthropic

MODEL = "anthropic/claude-3-haiku-20240307"
UPSTREAM_MODEL = "claude-3-haiku-20240307"
TOOL_ID = re.compile(r"toolu_01[A-Za-z0-9]{22}")
WEATHER: Any = {
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
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
TOOLS: list[Any] = [WEATHER]
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": WEATHER["function"]["parameters"],
}
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Lyon"},
]
INPUT = {"city": "Lyon", "unit": "celsius"}
PREAMBLE = "I'll use get_weather."


@dataclass
class Wired:
    fake: FakeAnthropic
    server: Running

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.server.url}/v1", api_key=self.server.token, max_retries=0
        )

    @property
    def sent(self) -> dict[str, Any]:
        """The Messages API body the fake received last."""
        body: dict[str, Any] = self.fake.requests[-1].json
        return body


async def wire(make_server: ServerFactory, **overrides: Any) -> AsyncIterator[Wired]:
    fake = FakeAnthropic()
    base = await fake.start()
    try:
        settings = {"anthropic_base_url": base, "anthropic_api_key": fake.api_key, **overrides}
        yield Wired(fake, await make_server(stored_key=None, **settings))
    finally:
        await fake.stop()


@pytest.fixture
async def wired(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async for pair in wire(make_server):
        yield pair


@pytest.fixture
async def dropping(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async for pair in wire(make_server, drop_params=True):
        yield pair


def gathered(chunks: list[Any]) -> list[dict[str, Any]]:
    """Tool call deltas put together as OpenAI clients do: by ``index`` into a list."""
    calls: list[dict[str, Any]] = []
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or ()) if chunk.choices else ():
            while len(calls) <= delta.index:
                calls.append({"id": "", "type": "", "name": "", "arguments": "", "pieces": 0})
            call = calls[delta.index]
            call["id"] = delta.id or call["id"]
            call["type"] = delta.type or call["type"]
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
                call["pieces"] += bool(delta.function.arguments)
    return calls


# The openai SDK: tool calls.


async def test_a_streamed_tool_call(wired: Wired) -> None:
    async with wired.openai() as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]
    [call] = gathered(chunks)
    assert TOOL_ID.fullmatch(call["id"])
    assert call["type"] == "function"
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", INPUT)
    # Delivered whole once its input is complete, as Mistral sends calls: the Mistral SDKs
    # refuse a tool-call delta without the function's name.
    assert call["pieces"] == 1
    first = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls)
    assert (first.index, first.id, first.type) == (0, call["id"], "function")
    assert first.function is not None
    assert first.function.name == "get_weather"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == PREAMBLE
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.model for c in chunks} == {MODEL}
    assert wired.fake.expected_tool_call(wired.sent) == ("get_weather", INPUT)
    assert wired.sent["tools"] == [ANTHROPIC_WEATHER]
    assert "tool_choice" not in wired.sent


async def test_a_tool_call_not_streamed(wired: Wired) -> None:
    async with wired.openai() as client:
        answer = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == PREAMBLE
    [call] = choice.message.tool_calls or []
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert TOOL_ID.fullmatch(call.id)
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", INPUT)
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    assert answer.model == MODEL


async def test_the_sdks_stream_helper_assembles_the_call(wired: Wired) -> None:
    async with (
        wired.openai() as client,
        client.chat.completions.stream(model=MODEL, messages=MESSAGES, tools=TOOLS) as stream,
    ):
        final = await stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", INPUT)
    assert final.choices[0].finish_reason == "tool_calls"


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
    return {"role": "assistant", "content": message.content, "tool_calls": calls}


@pytest.mark.parametrize("by_hand", [True, False], ids=["dict", "sdk-message"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_round_trip_with_the_tool_result(wired: Wired, stream: bool, by_hand: bool) -> None:
    async with wired.openai() as client:
        first = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
        message = first.choices[0].message
        [call] = message.tool_calls or []
        result = {"role": "tool", "tool_call_id": call.id, "content": "12°C and sunny"}
        messages = [*MESSAGES, assistant_turn(message, by_hand), result]
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
    assert (text, finish) == ("The tool said: 12°C and sunny", "stop")
    use = {"type": "tool_use", "id": call.id, "name": "get_weather", "input": INPUT}
    assert wired.sent["system"] == "You are helpful."
    assert wired.sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Lyon"}]},
        {"role": "assistant", "content": [{"type": "text", "text": PREAMBLE}, use]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "12°C and sunny"}
            ],
        },
    ]
    assert text == wired.fake.expected_reply(wired.sent["messages"])


async def test_two_tool_results_and_the_users_words_make_one_turn(wired: Wired) -> None:
    weather = {"name": "get_weather", "arguments": json.dumps(INPUT)}
    time_now = {"name": "get_time", "arguments": ""}  # some clients send no arguments so
    calls = [
        {"id": "toolu_01", "type": "function", "function": weather},
        {"id": "toolu_02", "type": "function", "function": time_now},
    ]
    messages = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "12°C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "Thanks!"},
    ]
    async with wired.openai() as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=messages, tools=[WEATHER, TIME]
        )
    assert answer.choices[0].message.content == "The tool said: 12°C; noon"
    assert wired.sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": INPUT},
                {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "12°C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_02",
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]


async def test_tool_choice_naming_a_function(wired: Wired) -> None:
    named: Any = {"type": "function", "function": {"name": "get_time"}}
    async with wired.openai() as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=[WEATHER, TIME], tool_choice=named
        )
    assert wired.sent["tool_choice"] == {"type": "tool", "name": "get_time"}
    [call] = answer.choices[0].message.tool_calls or []
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_time",
        {"zone": "Lyon"},
    )
    assert answer.choices[0].message.content is None  # a forced call comes alone
    assert answer.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
    ],
)
async def test_tool_choice_words_and_parallel_calls(
    wired: Wired, given: dict[str, Any], sent: dict[str, Any]
) -> None:
    async with wired.openai() as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, **given
        )
    assert wired.sent["tool_choice"] == sent
    if sent["type"] == "none":
        assert answer.choices[0].message.tool_calls is None
        assert answer.choices[0].message.content == "Hello! You said: Lyon"
    else:
        assert answer.choices[0].finish_reason == "tool_calls"


async def test_a_call_without_arguments_has_an_empty_object(wired: Wired) -> None:
    roll: Any = {"type": "function", "function": {"name": "roll_die"}}  # no parameters at all
    async with wired.openai() as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=[roll], stream=True
        )
        [call] = gathered([chunk async for chunk in stream])
    assert (call["name"], call["arguments"]) == ("roll_die", "{}")
    assert wired.sent["tools"] == [
        {"name": "roll_die", "input_schema": {"type": "object", "properties": {}}}
    ]


async def test_usage_comes_once_where_the_client_looks_for_it(wired: Wired) -> None:
    async with wired.openai() as client:
        asked = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        with_usage = [chunk async for chunk in asked]
        unasked = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        without = [chunk async for chunk in unasked]
    # Asked: OpenAI's own last chunk with empty choices, and nowhere else.
    assert [i for i, c in enumerate(with_usage) if c.usage] == [len(with_usage) - 1]
    assert with_usage[-1].choices == []
    # Not asked: on the chunk with the finish reason, where Mistral puts it.
    assert [i for i, c in enumerate(without) if c.usage] == [len(without) - 1]
    assert without[-1].choices[0].finish_reason == "stop"
    assert without[-1].usage == with_usage[-1].usage


# The openai SDK: parameters.


async def test_parameters_with_an_equivalent_are_translated(wired: Wired) -> None:
    async with wired.openai() as client:
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "developer", "content": "Be brief."}, *MESSAGES[1:]],
            stop=["END", "STOP"],
            top_p=0.9,
            temperature=1.7,
            user="user-42",
            max_completion_tokens=123,
            extra_body={"top_k": 5},
        )
    assert wired.sent == {
        "model": UPSTREAM_MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Lyon"}]}],
        "max_tokens": 123,
        "stream": True,
        "system": "Be brief.",
        "temperature": 1.0,  # clamped to the model's range from the catalogue
        # no top_p: newer Claude models refuse it together with a temperature
        "top_k": 5,
        "stop_sequences": ["END", "STOP"],
        "metadata": {"user_id": "user-42"},
    }
    async with wired.openai() as client:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES, stop="END", top_p=0.9)
    assert wired.sent["stop_sequences"] == ["END"]
    assert wired.sent["top_p"] == 0.9  # alone, it is sent


async def test_image_parts_become_image_blocks(wired: Wired) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    async with wired.openai() as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": content}]
        )
    assert answer.choices[0].message.content == "Hello! You said: What is this?"
    assert wired.sent["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"presence_penalty": 0.5}, "'presence_penalty'"),
        ({"seed": 7}, "'seed'"),
        ({"response_format": {"type": "json_object"}}, "'response_format'"),
        ({"logit_bias": {"1": 2}, "frequency_penalty": 1.0}, "'frequency_penalty', 'logit_bias'"),
    ],
)
async def test_a_parameter_without_an_equivalent_is_a_400(
    wired: Wired, given: dict[str, Any], named: str
) -> None:
    async with wired.openai() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES, **given)
    assert f"Anthropic does not take {named}" in str(caught.value)
    assert "CHATWIRE_DROP_PARAMS" in str(caught.value)
    assert wired.fake.requests == []


async def test_the_operator_can_drop_them(dropping: Wired) -> None:
    async with dropping.openai() as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, seed=7, presence_penalty=0.5, top_p=0.5
        )
    assert answer.choices[0].message.content == "Hello! You said: Lyon"
    assert "seed" not in dropping.sent
    assert "presence_penalty" not in dropping.sent
    assert dropping.sent["top_p"] == 0.5


def calling(arguments: str) -> dict[str, Any]:
    function = {"name": "get_weather", "arguments": arguments}
    return {
        "role": "assistant",
        "tool_calls": [{"id": "t1", "type": "function", "function": function}],
    }


BAD_TURNS: list[Any] = [
    pytest.param(
        calling("{city: Lyon"),
        "messages[2].tool_calls[0].function.arguments is not valid JSON",
        id="arguments-not-json",
    ),
    pytest.param(
        calling("[1, 2]"),
        "messages[2].tool_calls[0].function.arguments must be a JSON object",
        id="arguments-not-an-object",
    ),
    pytest.param({"role": "tool", "content": "12°C"}, "needs the tool_call_id", id="no-call-id"),
    pytest.param({"role": "function", "name": "f", "content": "x"}, "role 'function'", id="role"),
]


@pytest.mark.parametrize(("turn", "message"), BAD_TURNS)
async def test_turns_chatwire_cannot_translate_are_a_400(
    wired: Wired, turn: Any, message: str
) -> None:
    async with wired.openai() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=[*MESSAGES, turn], tools=TOOLS
            )
    assert message in str(caught.value)
    assert wired.fake.requests == []


async def test_a_result_for_an_unknown_call_is_anthropics_400(wired: Wired) -> None:
    result: Any = {
        "role": "tool",
        "tool_call_id": "call_Qib2xfCV1qpazcvBOLg3wCNL",
        "content": "12°C",
    }
    async with wired.openai() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=[*MESSAGES, result], tools=TOOLS
            )
    assert (
        "Anthropic answered 400: messages.0.content.0: unexpected `tool_use_id` found in"
        " `tool_result` blocks: call_Qib2xfCV1qpazcvBOLg3wCNL"
    ) in str(caught.value)


# The mistralai SDK.

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)
TEXT: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Say hello to the gateway"},
]


def mistral(wired: Wired, key: str | None = None) -> Mistral:
    return Mistral(
        api_key=key or wired.server.token, server_url=wired.server.url, retry_config=NO_RETRIES
    )


async def test_mistralai_complete(wired: Wired) -> None:
    async with mistral(wired) as client:
        answer = await client.chat.complete_async(model=MODEL, messages=TEXT, max_tokens=200)
    assert answer.model == MODEL
    [choice] = answer.choices
    assert choice.message.content == wired.fake.expected_reply(wired.sent["messages"])
    assert choice.message.content == "Hello! You said: Say hello to the gateway"
    assert choice.finish_reason == "stop"
    usage = answer.usage
    assert usage.prompt_tokens == 3 + 5  # the fake counts the system prompt's pieces too
    assert usage.completion_tokens == len(wired.fake.expected_pieces(wired.sent["messages"]))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert wired.sent["max_tokens"] == 200


async def test_mistralai_stream(wired: Wired) -> None:
    async with mistral(wired) as client:
        stream = await client.chat.stream_async(model=MODEL, messages=TEXT)
        async with stream:
            events = [event async for event in stream]
    text = "".join(
        str(choice.delta.content or "") for event in events for choice in event.data.choices
    )
    assert text == wired.fake.expected_reply(wired.sent["messages"])
    finishes = [c.finish_reason for e in events for c in e.data.choices if c.finish_reason]
    assert finishes == ["stop"]
    # Where Mistral puts it, and so where its SDK reads it: on the last chunk, once.
    assert [i for i, event in enumerate(events) if event.data.usage] == [len(events) - 1]
    usage = events[-1].data.usage
    assert usage is not None
    assert usage.completion_tokens == len(wired.fake.expected_pieces(wired.sent["messages"]))
    assert usage.total_tokens == (usage.prompt_tokens or 0) + usage.completion_tokens
    assert {event.data.model for event in events} == {MODEL}


async def test_mistralai_tool_call(wired: Wired) -> None:
    async with mistral(wired) as client:
        answer = await client.chat.complete_async(model=MODEL, messages=MESSAGES, tools=TOOLS)
    [call] = answer.choices[0].message.tool_calls or []
    assert TOOL_ID.fullmatch(call.id or "")
    assert call.function.name == "get_weather"
    assert json.loads(str(call.function.arguments)) == INPUT
    assert answer.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("whose", ["chatwire", "anthropic"])
async def test_mistralai_auth_errors(make_server: ServerFactory, whose: str) -> None:
    """A bad chatwire token, and a key Anthropic refuses: both 401, as the SDK's SDKError."""
    fake = FakeAnthropic()
    base = await fake.start()
    try:
        key = "wrong-key" if whose == "anthropic" else fake.api_key
        wired = Wired(fake, await make_server(None, anthropic_base_url=base, anthropic_api_key=key))
        token = "cw_not-a-token" if whose == "chatwire" else None
        async with mistral(wired, token) as client:
            with pytest.raises(errors.SDKError) as completing:
                await client.chat.complete_async(model=MODEL, messages=TEXT)
            with pytest.raises(errors.SDKError) as streaming:
                await client.chat.stream_async(model=MODEL, messages=TEXT)
    finally:
        await fake.stop()
    for caught in (completing, streaming):
        assert caught.value.status_code == 401
        body = json.loads(caught.value.body)
        assert body["error"]["type"] == "invalid_request_error"
        code = "provider_key_invalid" if whose == "anthropic" else "invalid_api_key"
        assert body["error"]["code"] == code
    if whose == "anthropic":
        assert "Anthropic API Key is incorrect" in completing.value.body
        assert len(fake.requests) == 2
    else:
        assert fake.requests == []


# LangChain's ChatOpenAI.


def langchain(wired: Wired, model: str = MODEL, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{wired.server.url}/v1",
        api_key=SecretStr(wired.server.token),
        model=model,
        max_retries=0,
        **options,
    )


LC_MESSAGES = [SystemMessage("You are helpful."), HumanMessage("Say hello to the gateway")]


async def test_langchain_invoke(wired: Wired) -> None:
    answer = await langchain(wired).ainvoke(LC_MESSAGES)
    assert isinstance(answer, AIMessage)
    assert answer.content == "Hello! You said: Say hello to the gateway"
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.response_metadata["model_name"] == MODEL
    usage = answer.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] == len(wired.fake.expected_pieces(wired.sent["messages"]))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert wired.sent["system"] == "You are helpful."


async def test_langchain_streams_incrementally(wired: Wired) -> None:
    arrivals: list[float] = []
    texts: list[str] = []
    async for chunk in langchain(wired, f"anthropic/{FAULT_SLOW}").astream(LC_MESSAGES):
        assert isinstance(chunk, AIMessageChunk)
        if chunk.text:
            texts.append(chunk.text)
            arrivals.append(time.monotonic())
    sent = wired.sent["messages"]
    assert texts == wired.fake.expected_pieces(sent, model=FAULT_SLOW)
    assert len(texts) > 3
    # Relayed as they come, not buffered: the fake waits SLOW_TOKEN_DELAY between pieces.
    assert arrivals[-1] - arrivals[0] >= 0.5 * SLOW_TOKEN_DELAY * (len(texts) - 1)


async def test_langchain_stream_usage_is_counted_once(wired: Wired) -> None:
    merged: AIMessageChunk | None = None
    async for chunk in langchain(wired, stream_usage=True).astream(LC_MESSAGES):
        assert isinstance(chunk, AIMessageChunk)
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    assert merged.usage_metadata is not None
    expected = len(wired.fake.expected_pieces(wired.sent["messages"]))
    assert merged.usage_metadata["output_tokens"] == expected
    assert merged.content == wired.fake.expected_reply(wired.sent["messages"])


async def test_langchain_bind_tools(wired: Wired) -> None:
    llm = langchain(wired).bind_tools([WEATHER])
    question = [HumanMessage("Lyon")]
    answer = await llm.ainvoke(question)
    assert isinstance(answer, AIMessage)
    [call] = answer.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", INPUT)
    assert call["id"] is not None
    assert TOOL_ID.fullmatch(call["id"])
    assert answer.content == PREAMBLE
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    streamed: AIMessageChunk | None = None
    async for chunk in llm.astream(question):
        assert isinstance(chunk, AIMessageChunk)
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [("get_weather", INPUT)]
    result = LangChainToolMessage("12°C and sunny", tool_call_id=call["id"])
    final = await llm.ainvoke([*question, answer, result])
    assert final.content == "The tool said: 12°C and sunny"
