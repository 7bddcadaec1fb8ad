"""Tool calling in the fake Ollama server, over real TCP with aiohttp's client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes._text import count_tokens
from tests.fakes.fake_ollama import FakeOllama

OLLAMA_ID = re.compile(r"call_[a-z0-9]{8}")
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
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
USER: list[dict[str, Any]] = [{"role": "user", "content": "Lyon"}]
ARGUMENTS = {"city": "Lyon", "unit": "celsius"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def chat(
    fake: FakeOllama, session: aiohttp.ClientSession, body: dict[str, Any]
) -> tuple[int, list[dict[str, Any]]]:
    """The status and the answer's JSON objects (one per NDJSON line)."""
    async with session.post(f"{fake.base_url}/api/chat", json=body) as resp:
        raw = await resp.read()
    return resp.status, [json.loads(line) for line in raw.decode().splitlines()]


def body(messages: list[dict[str, Any]] = USER, **extra: Any) -> dict[str, Any]:
    return {"model": "llama3.2", "messages": messages, "tools": [WEATHER, TIME], **extra}


def history(result: str = "12°C", tool_name: str | None = "get_weather") -> list[dict[str, Any]]:
    """The conversation after a call, as Ollama's own clients send it back."""
    call = {"function": {"name": "get_weather", "arguments": ARGUMENTS}}
    tool: dict[str, Any] = {"role": "tool", "content": result}
    if tool_name is not None:
        tool["tool_name"] = tool_name
    return [*USER, {"role": "assistant", "content": "", "tool_calls": [call]}, tool]


async def test_streamed_call_is_one_line_then_the_end(
    fake: FakeOllama, session: aiohttp.ClientSession
) -> None:
    status, objects = await chat(fake, session, body())
    assert status == 200
    [call_line, final] = objects
    assert call_line["done"] is False
    message = call_line["message"]
    assert message["role"] == "assistant"
    assert message["content"] == ""
    [call] = message["tool_calls"]
    assert list(call) == ["id", "function"]
    assert OLLAMA_ID.fullmatch(call["id"])
    assert fake.call_ids == [call["id"]]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": ARGUMENTS}
    assert fake.expected_tool_call(body()) == ("get_weather", ARGUMENTS)
    assert final["done"] is True
    assert final["done_reason"] == "stop"  # Ollama does not say "tool_calls"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["eval_count"] == count_tokens(json.dumps(ARGUMENTS, separators=(",", ":")))


async def test_not_streamed_the_call_is_in_the_one_object(
    fake: FakeOllama, session: aiohttp.ClientSession
) -> None:
    status, [answer] = await chat(fake, session, body(stream=False))
    assert status == 200
    assert answer["done"] is True
    assert answer["done_reason"] == "stop"
    assert answer["message"]["content"] == ""
    [call] = answer["message"]["tool_calls"]
    assert call["function"]["arguments"] == ARGUMENTS
    assert fake.call_ids == [call["id"]]


async def test_each_call_has_its_own_id(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    for _ in range(3):
        await chat(fake, session, body())
    assert len(set(fake.call_ids)) == 3


async def test_before_0_12_10_calls_had_no_id_nor_index(session: aiohttp.ClientSession) -> None:
    async with FakeOllama(tool_call_ids=False) as fake:
        _, [call_line, _] = await chat(fake, session, body())
    assert call_line["message"]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": ARGUMENTS}}
    ]
    assert fake.call_ids == []


async def test_tool_choice_means_nothing_to_ollama(
    fake: FakeOllama, session: aiohttp.ClientSession
) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    for choice in ("none", named):
        _, objects = await chat(fake, session, body(tool_choice=choice))
        assert objects[0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert fake.will_call_tool(body(tool_choice=choice))


async def test_without_tools_it_answers_with_text(
    fake: FakeOllama, session: aiohttp.ClientSession
) -> None:
    _, [answer] = await chat(
        fake, session, {"model": "llama3.2", "messages": USER, "stream": False}
    )
    assert "tool_calls" not in answer["message"]
    assert answer["message"]["content"] == "Hello! You said: Lyon"


@pytest.mark.parametrize("tool_name", ["get_weather", None], ids=["tool_name", "no-name"])
async def test_a_tool_result_is_answered_with_text(
    fake: FakeOllama, session: aiohttp.ClientSession, tool_name: str | None
) -> None:
    messages = history(tool_name=tool_name)
    status, objects = await chat(fake, session, body(messages))
    assert status == 200
    text = "".join(item["message"]["content"] for item in objects)
    assert text == fake.expected_reply(messages) == "The tool said: 12°C"
    assert objects[-1]["done_reason"] == "stop"
    assert all("tool_calls" not in item["message"] for item in objects)


async def test_tool_turns_are_not_paired_as_ollama_does_not(
    fake: FakeOllama, session: aiohttp.ClientSession
) -> None:
    """A tool result after no call at all is rendered for the model, not refused."""
    messages = [*USER, {"role": "tool", "tool_name": "get_time", "content": "noon"}]
    status, objects = await chat(fake, session, body(messages))
    assert status == 200
    assert "".join(item["message"]["content"] for item in objects) == "The tool said: noon"


@pytest.mark.parametrize("model", ["gemma3", "llava:latest"])
async def test_tools_for_a_model_without_them_are_refused(
    fake: FakeOllama, session: aiohttp.ClientSession, model: str
) -> None:
    status, [error] = await chat(fake, session, body(model=model))
    assert status == 400
    reference = model if ":" in model else f"{model}:latest"
    assert error == {"error": f"registry.ollama.ai/library/{reference} does not support tools"}
    status, _ = await chat(fake, session, {"model": model, "messages": USER})
    assert status == 200


ARGUMENTS_AS_TEXT = [
    *USER,
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": json.dumps(ARGUMENTS)}}],
    },
]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (
            body(ARGUMENTS_AS_TEXT),
            "json: cannot unmarshal string into Go struct field "
            "ChatRequest.messages.tool_calls.function.arguments"
            " of type api.ToolCallFunctionArguments",
        ),
        (
            {**body(), "tools": WEATHER},
            "json: cannot unmarshal object into Go struct field ChatRequest.tools"
            " of type api.Tools",
        ),
        (
            body(tools=[{"type": "function", "function": {"name": 7}}]),
            "json: cannot unmarshal number into Go struct field ChatRequest.tools.function.name"
            " of type string",
        ),
        (
            body([*USER, {"role": "tool", "tool_name": ["x"], "content": "noon"}]),
            "json: cannot unmarshal array into Go struct field ChatRequest.messages.tool_name"
            " of type string",
        ),
        (
            body([*USER, {"role": "assistant", "content": "", "tool_calls": {"function": {}}}]),
            "json: cannot unmarshal object into Go struct field ChatRequest.messages.tool_calls"
            " of type []api.ToolCall",
        ),
    ],
    ids=["arguments-as-text", "tools-object", "name-number", "tool-name-array", "calls-object"],
)
async def test_tool_shapes_ollama_cannot_decode_are_400(
    fake: FakeOllama, session: aiohttp.ClientSession, request_body: dict[str, Any], message: str
) -> None:
    status, [error] = await chat(fake, session, request_body)
    assert status == 400
    assert error == {"error": message}
    assert fake.call_ids == []
