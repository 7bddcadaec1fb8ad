"""Ollama through POST /v1/chat/completions with the official clients, over TCP.

The openai SDK, the mistralai SDK and LangChain's ChatOpenAI are used as against their own
providers, changed only in base URL and key, against a running chatwire pointed at the fake
Ollama. The fake calls the request's first tool with arguments derived from its schema
(``expected_tool_call``), in Ollama's shape (arguments as an object, one line per reply, an
``id`` since Ollama 0.12.10 and none before), and answers a tool result with
``"The tool said: <content>"``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from mistralai.client import Mistral, errors
from mistralai.client.utils import BackoffStrategy, RetryConfig
from pydantic import SecretStr

from tests.conftest import Running, ServerFactory
from tests.fakes._faults import SLOW_TOKEN_DELAY
from tests.fakes._text import count_tokens
from tests.fakes.fake_ollama import FakeOllama

MODEL = "ollama/llama3.2"
OLLAMA_ID = re.compile(r"call_[a-z0-9]{8}")
OWN_ID = re.compile(r"call_[0-9a-f]{24}")
WEATHER: dict[str, Any] = {
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
TIME: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
TOOLS: list[Any] = [WEATHER, TIME]
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Lyon"},
]
ARGUMENTS = {"city": "Lyon", "unit": "celsius"}
PIXEL = "iVBORw0KGgo="


@pytest.fixture
async def ollama() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as fake:
        yield fake


async def chatwire_for(make_server: ServerFactory, fake: FakeOllama, **settings: Any) -> Running:
    return await make_server(stored_key=None, ollama_base_url=fake.base_url, **settings)


@pytest.fixture
async def running(make_server: ServerFactory, ollama: FakeOllama) -> Running:
    return await chatwire_for(make_server, ollama)


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


def sent(fake: FakeOllama) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json
    return body


def expected_call(fake: FakeOllama) -> tuple[str, dict[str, Any]]:
    call = fake.expected_tool_call(sent(fake))
    assert call == ("get_weather", ARGUMENTS)
    return call


# The openai SDK: tool calls.


async def test_non_streamed_tool_call(running: Running, ollama: FakeOllama) -> None:
    async with sdk(running) as client:
        answer = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert call.type == "function"
    assert call.id == ollama.call_ids[-1]
    assert OLLAMA_ID.fullmatch(call.id)
    assert (call.function.name, json.loads(call.function.arguments)) == expected_call(ollama)
    assert answer.model == MODEL
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    assert sent(ollama)["tools"] == TOOLS
    assert "tool_choice" not in sent(ollama)


async def test_streamed_tool_call_is_one_delta(running: Running, ollama: FakeOllama) -> None:
    async with sdk(running) as client:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    [delta] = deltas  # Ollama sends the whole call at once
    assert delta.index == 0
    assert delta.type == "function"
    assert delta.id == ollama.call_ids[-1]
    assert delta.function is not None
    assert delta.function.name is not None
    assert delta.function.arguments is not None
    assert (delta.function.name, json.loads(delta.function.arguments)) == expected_call(ollama)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1
    assert {c.model for c in chunks} == {MODEL}


async def test_the_sdks_stream_helper_assembles_the_call(
    running: Running, ollama: FakeOllama
) -> None:
    async with (
        sdk(running) as client,
        client.chat.completions.stream(model=MODEL, messages=MESSAGES, tools=TOOLS) as stream,
    ):
        final = await stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    [call] = final.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == expected_call(ollama)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_calls_from_an_ollama_without_ids_get_ids_of_their_own(
    make_server: ServerFactory, stream: bool
) -> None:
    """Before 0.12.10 Ollama's calls had no ids: chatwire gives each one, unique per call."""
    async with FakeOllama(tool_call_ids=False) as fake:
        server = await chatwire_for(make_server, fake)
        ids: list[str] = []
        async with sdk(server) as client:
            for _ in range(2):
                if stream:
                    chunks = await client.chat.completions.create(
                        model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
                    )
                    async for chunk in chunks:
                        for delta in (
                            chunk.choices[0].delta.tool_calls or () if chunk.choices else ()
                        ):
                            assert delta.id is not None
                            ids.append(delta.id)
                else:
                    answer = await client.chat.completions.create(
                        model=MODEL, messages=MESSAGES, tools=TOOLS
                    )
                    ids.extend(call.id for call in answer.choices[0].message.tool_calls or ())
    assert len(ids) == 2
    assert all(OWN_ID.fullmatch(call_id) for call_id in ids)
    assert len(set(ids)) == 2
    assert fake.call_ids == []


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
    running: Running, ollama: FakeOllama, stream: bool, by_hand: bool
) -> None:
    async with sdk(running) as client:
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
    assert finish == "stop"
    got = sent(ollama)
    # In Ollama's own shape: the arguments an object, the result named by its function.
    assert got["messages"][2:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": ARGUMENTS}}],
        },
        {"role": "tool", "content": "12°C and sunny", "tool_name": "get_weather"},
    ]
    assert text == ollama.expected_reply(got["messages"]) == "The tool said: 12°C and sunny"


async def test_tool_choice_none_sends_no_tools(running: Running, ollama: FakeOllama) -> None:
    async with sdk(running) as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="none"
        )
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "Hello! You said: Lyon"
    assert answer.choices[0].message.tool_calls is None
    assert "tools" not in sent(ollama)


NAMED: Any = {"type": "function", "function": {"name": "get_time"}}


@pytest.mark.parametrize(
    ("choice", "named"),
    [(NAMED, "the function 'get_time'"), ("required", "'required'")],
    ids=["named", "required"],
)
async def test_a_tool_choice_ollama_cannot_honour_is_a_400_when_strict(
    make_server: ServerFactory, ollama: FakeOllama, choice: Any, named: str
) -> None:
    strict = await chatwire_for(make_server, ollama, ollama_strict_tool_choice="true")
    async with sdk(strict) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice=choice
            )
    assert named in caught.value.message
    assert "Ollama cannot be made" in caught.value.message
    assert "CHATWIRE_DROP_PARAMS" in caught.value.message
    assert ollama.requests == []


@pytest.mark.parametrize(
    "forcing",
    [{"tool_choice": NAMED}, {"tool_choice": "required"}, {"parallel_tool_calls": False}],
    ids=["named", "required", "one-call"],
)
async def test_by_default_a_forced_tool_choice_is_passed_over_and_said(
    running: Running, ollama: FakeOllama, forcing: dict[str, Any]
) -> None:
    # What structured-output libraries (instructor, pydantic-ai) send: the tools go to Ollama,
    # which decides; the reply says the choice was not honoured.
    async with sdk(running) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, **forcing
        )
    answer = raw.parse()
    assert raw.status_code == 200
    assert raw.headers["x-chatwire-tool-choice"] == "ignored"
    assert [tool["function"]["name"] for tool in sent(ollama)["tools"]] == [
        tool["function"]["name"] for tool in TOOLS
    ]
    assert answer.choices[0].finish_reason in ("tool_calls", "stop")


async def test_an_honoured_tool_choice_says_nothing(running: Running, ollama: FakeOllama) -> None:
    async with sdk(running) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="auto"
        )
    assert raw.status_code == 200
    assert "x-chatwire-tool-choice" not in raw.headers


async def test_drop_params_lets_ollama_choose_the_tool(
    make_server: ServerFactory, ollama: FakeOllama
) -> None:
    server = await chatwire_for(make_server, ollama, drop_params=True)
    async with sdk(server) as client:
        answer = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            tools=TOOLS,
            tool_choice=NAMED,
            parallel_tool_calls=False,
            logit_bias={"1": 5},
        )
    [call] = answer.choices[0].message.tool_calls or []
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather"  # Ollama's own choice, the first tool here
    assert sent(ollama)["tools"] == TOOLS
    assert not {"tool_choice", "parallel_tool_calls", "logit_bias"} & set(sent(ollama))


async def test_a_model_without_tools_is_ollamas_400(running: Running, ollama: FakeOllama) -> None:
    async with sdk(running) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="ollama/gemma3", messages=MESSAGES, tools=TOOLS
            )
    assert "Ollama answered 400" in caught.value.message
    assert "registry.ollama.ai/library/gemma3:latest does not support tools" in str(caught.value)


# The openai SDK: parameters.


async def test_parameters_are_translated_to_ollamas_options(
    running: Running, ollama: FakeOllama
) -> None:
    async with sdk(running) as client:
        answer = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stop="END",
            top_p=0.5,
            seed=7,
            presence_penalty=0.25,
            frequency_penalty=0.5,
            temperature=0.3,
            max_completion_tokens=40,
            response_format={"type": "json_object"},
        )
        assert answer.choices[0].message.content == "Hello! You said: Lyon"
        assert sent(ollama)["options"] == {
            "temperature": 0.3,
            "num_predict": 40,
            "top_p": 0.5,
            "seed": 7,
            "presence_penalty": 0.25,
            "frequency_penalty": 0.5,
            "stop": ["END"],
        }
        assert sent(ollama)["format"] == "json"
        schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
        person: Any = {"name": "person", "schema": schema, "strict": True}
        await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stop=["END", "STOP"],
            response_format={"type": "json_schema", "json_schema": person},
        )
    assert sent(ollama)["options"]["stop"] == ["END", "STOP"]
    assert sent(ollama)["format"] == schema
    assert not {"stop", "seed", "response_format", "top_p"} & set(sent(ollama))


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"logit_bias": {"1": 5}}, "'logit_bias'"),
        ({"user": "someone"}, "'user'"),
        ({"tools": TOOLS, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
    ],
    ids=["logit_bias", "user", "parallel_tool_calls", "response_format"],
)
async def test_what_ollama_cannot_take_is_a_400_naming_it(
    make_server: ServerFactory, ollama: FakeOllama, extra: dict[str, Any], named: str
) -> None:
    # One call per reply cannot be asked of Ollama: refused when tool choices are strict.
    strict = "true" if "parallel_tool_calls" in extra else "false"
    running = await chatwire_for(make_server, ollama, ollama_strict_tool_choice=strict)
    async with sdk(running) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES, **extra)
    assert caught.value.status_code == 400
    assert named in caught.value.message
    assert ollama.requests == []


def with_call(arguments: str, result_id: str = "call_1") -> list[Any]:
    function = {"name": "get_weather", "arguments": arguments}
    call = {"id": "call_1", "type": "function", "function": function}
    return [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": result_id, "content": "12°C"},
    ]


@pytest.mark.parametrize(
    ("messages", "named"),
    [
        (
            with_call("{'city': 'Lyon'}"),
            "messages[2].tool_calls[0].function.arguments is not valid",
        ),
        (with_call("[1, 2]"), "messages[2].tool_calls[0].function.arguments must be a JSON object"),
        (with_call("{}", result_id="call_9"), "tool_call_id 'call_9'"),
    ],
    ids=["not-json", "not-an-object", "unknown-call"],
)
async def test_tool_turns_ollama_cannot_take_are_a_400(
    running: Running, ollama: FakeOllama, messages: list[Any], named: str
) -> None:
    async with sdk(running) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert named in caught.value.message
    assert ollama.requests == []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0] is not a function"),
        (
            {"messages": [*MESSAGES, {"role": "tool", "content": "12°C"}]},
            "messages[2] is a tool result without a tool_call_id",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "needs json_schema.schema",
        ),
        ({"stop": [1, 2]}, "'stop' must be a string or a list of strings"),
    ],
    ids=["custom-tool", "no-tool-call-id", "no-schema", "stop-numbers"],
)
async def test_shapes_chatwire_cannot_translate_are_a_400(
    running: Running, ollama: FakeOllama, extra: dict[str, Any], named: str
) -> None:
    body = {"model": MODEL, "messages": MESSAGES, **extra}
    resp = await running.client.post("/v1/chat/completions", json=body, headers=running.auth)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert named in error["message"]
    assert ollama.requests == []


async def test_images_go_inline_and_links_are_a_400(running: Running, ollama: FakeOllama) -> None:
    def asking(url: str) -> list[Any]:
        parts = [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        return [{"role": "user", "content": parts}]

    async with sdk(running) as client:
        answer = await client.chat.completions.create(
            model="ollama/llava", messages=asking(f"data:image/png;base64,{PIXEL}")
        )
        assert answer.choices[0].message.content == "Hello! You said: What is this?"
        assert sent(ollama)["messages"] == [
            {"role": "user", "content": "What is this?", "images": [PIXEL]}
        ]
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="ollama/llava", messages=asking("https://example.com/cat.png")
            )
    assert "data: URL" in caught.value.message
    assert len(ollama.requests) == 1


# The mistralai SDK.

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)


def mistral(server: Running, key: str | None = None) -> Mistral:
    return Mistral(api_key=key or server.token, server_url=server.url, retry_config=NO_RETRIES)


async def test_mistralai_complete(running: Running, ollama: FakeOllama) -> None:
    async with mistral(running) as client:
        answer = await client.chat.complete_async(model=MODEL, messages=MESSAGES)
    assert answer.model == MODEL
    choice = answer.choices[0]
    assert choice.message.content == ollama.expected_reply(MESSAGES)
    assert choice.finish_reason == "stop"
    usage = answer.usage
    assert usage.prompt_tokens == sum(count_tokens(m["content"]) for m in MESSAGES)
    assert usage.completion_tokens == len(ollama.expected_pieces(MESSAGES))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_mistralai_stream(running: Running, ollama: FakeOllama) -> None:
    async with mistral(running) as client:
        stream = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
        async with stream:
            events = [event async for event in stream]
    text = "".join(str(c.delta.content or "") for e in events for c in e.data.choices)
    assert text == ollama.expected_reply(MESSAGES)
    finishes = [c.finish_reason for e in events for c in e.data.choices if c.finish_reason]
    assert finishes == ["stop"]
    # Where Mistral puts it: on the last event, with the finish reason, and only there.
    assert [i for i, event in enumerate(events) if event.data.usage] == [len(events) - 1]
    usage = events[-1].data.usage
    assert usage is not None
    assert usage.completion_tokens == len(ollama.expected_pieces(MESSAGES))
    assert usage.total_tokens == (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
    assert {event.data.model for event in events} == {MODEL}


async def test_mistralai_bad_token_is_its_error_class(running: Running, ollama: FakeOllama) -> None:
    async with mistral(running, key="cw_not-a-token") as client:
        with pytest.raises(errors.SDKError) as completing:
            await client.chat.complete_async(model=MODEL, messages=MESSAGES)
        with pytest.raises(errors.SDKError) as streaming:
            await client.chat.stream_async(model=MODEL, messages=MESSAGES)
    for caught in (completing, streaming):
        assert isinstance(caught.value, errors.MistralError)
        assert caught.value.status_code == 401
        assert json.loads(caught.value.body)["error"]["code"] == "invalid_api_key"
    assert ollama.requests == []


# LangChain's ChatOpenAI.


def chat(server: Running, model: str = MODEL, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key=SecretStr(server.token),
        model=model,
        max_retries=0,
        **options,
    )


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
    """The current weather in a city, in celsius or fahrenheit."""
    return f"12 degrees {unit} in {city}"


async def test_langchain_invoke(running: Running, ollama: FakeOllama) -> None:
    answer = await chat(running).ainvoke([HumanMessage("Say hello")])
    assert isinstance(answer, AIMessage)
    assert answer.content == "Hello! You said: Say hello"
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.response_metadata["model_name"] == MODEL
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] == len(
        ollama.expected_pieces([{"role": "user", "content": "Say hello"}])
    )


async def test_langchain_streams_as_it_arrives(running: Running, ollama: FakeOllama) -> None:
    pieces: list[str] = []
    arrivals: list[float] = []
    merged: AIMessageChunk | None = None
    async for chunk in chat(running, "ollama/fake-slow").astream([HumanMessage("Say hello")]):
        merged = chunk if merged is None else merged + chunk
        if chunk.text:
            pieces.append(chunk.text)
            arrivals.append(time.monotonic())
    wanted = ollama.expected_pieces([{"role": "user", "content": "Say hello"}])
    assert pieces == wanted
    assert len(pieces) > 3
    assert arrivals[-1] - arrivals[0] >= 0.5 * SLOW_TOKEN_DELAY * (len(pieces) - 1)
    assert merged is not None
    assert merged.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
async def test_langchain_bind_tools_calls_the_tool(
    running: Running, ollama: FakeOllama, stream: bool
) -> None:
    llm = chat(running).bind_tools([get_weather])
    question = [HumanMessage("Lyon")]
    if stream:
        merged: AIMessageChunk | None = None
        async for chunk in llm.astream(question):
            assert isinstance(chunk, AIMessageChunk)
            merged = chunk if merged is None else merged + chunk
        assert merged is not None
        answer: AIMessage = merged
    else:
        answer = await llm.ainvoke(question)
    [call] = answer.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == ollama.expected_tool_call(sent(ollama))[1] == ARGUMENTS
    assert call["id"] == ollama.call_ids[-1]
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    followed = await llm.ainvoke(
        [*question, answer, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    )
    assert followed.content == "The tool said: 12 degrees celsius in Lyon"
    assert sent(ollama)["messages"][-1] == {
        "role": "tool",
        "content": "12 degrees celsius in Lyon",
        "tool_name": "get_weather",
    }


async def test_the_developer_role_reaches_ollama_as_system(
    running: Running, ollama: FakeOllama
) -> None:
    messages: list[Any] = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": "Hello"},
    ]
    async with sdk(running) as client:
        answer = await client.chat.completions.create(model="ollama/llama3.2", messages=messages)
    assert answer.choices[0].message.content
    assert sent(ollama)["messages"][0] == {"role": "system", "content": "Answer briefly."}


async def test_a_mistyped_number_is_a_400_before_ollama(
    running: Running, ollama: FakeOllama
) -> None:
    before = len(ollama.requests)
    async with sdk(running) as client:
        for bad in ({"temperature": "hot"}, {"top_p": "high"}, {"stop": 3}):
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(
                    model="ollama/llama3.2",
                    messages=[{"role": "user", "content": "Hi"}],
                    extra_body=bad,
                )
            assert repr(next(iter(bad))) in str(caught.value)
    assert len(ollama.requests) == before
