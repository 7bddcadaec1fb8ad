"""Tool use in the fake Anthropic Messages API, over real TCP with aiohttp's client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes._faults import FAULT_DROP
from tests.fakes._text import split_pieces
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.test_fakes._helpers import collect

HEADERS = {"x-api-key": "fake-anthropic-key", "anthropic-version": "2023-06-01"}
MODEL = "claude-3-haiku-20240307"
TOOL_ID = re.compile(r"toolu_01[A-Za-z0-9]{22}")
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}
TIME: dict[str, Any] = {
    "name": "get_time",
    "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}},
}
NO_INPUT: dict[str, Any] = {"name": "roll_die", "input_schema": {"type": "object"}}
USER = [{"role": "user", "content": "Lyon"}]
INPUT = {"city": "Lyon", "unit": "celsius"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def body(*, stream: bool = True, **extra: Any) -> dict[str, Any]:
    request = {"model": MODEL, "max_tokens": 1024, "messages": USER, "tools": [WEATHER, TIME]}
    return {**request, "stream": stream, **extra}


async def post(
    fake: FakeAnthropic, session: aiohttp.ClientSession, request: dict[str, Any]
) -> tuple[int, bytes]:
    async with session.post(f"{fake.base_url}/messages", json=request, headers=HEADERS) as resp:
        return resp.status, await resp.read()


def events(raw: bytes) -> list[dict[str, Any]]:
    """The data of every event, checked against its ``event:`` line."""
    decoded = []
    for block in raw.decode().split("\n\n")[:-1]:
        name, data = block.split("\n")
        item = json.loads(data.removeprefix("data: "))
        assert name == f"event: {item['type']}"
        decoded.append(item)
    return decoded


def partial_json(items: list[dict[str, Any]]) -> list[str]:
    return [
        item["delta"]["partial_json"]
        for item in items
        if item["type"] == "content_block_delta" and item["delta"]["type"] == "input_json_delta"
    ]


def call(call_id: str = "toolu_01A09q90qw90lq917835lq9X") -> dict[str, Any]:
    use = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": INPUT}
    return {"role": "assistant", "content": [{"type": "text", "text": "Sure."}, use]}


def result(call_id: str = "toolu_01A09q90qw90lq917835lq9X", content: Any = "12°C") -> Any:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


async def test_auto_streams_a_sentence_then_the_tool_use(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    request = body()
    status, raw = await post(fake, session, request)
    assert status == 200
    items = events(raw)
    use = fake.expected_tool_use(request)
    assert (use.preamble, use.name, use.input) == ("I'll use get_weather.", "get_weather", INPUT)
    said, inputs = split_pieces(use.preamble), use.input_pieces()
    assert [(item["type"], item.get("index")) for item in items] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("ping", None),
        *[("content_block_delta", 0)] * len(said),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        *[("content_block_delta", 1)] * (1 + len(inputs)),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    texts = [i["delta"]["text"] for i in items if i.get("delta", {}).get("type") == "text_delta"]
    assert texts == said == ["I'll", " use", " get_weather."]
    start = next(i for i in items if i["type"] == "content_block_start" and i["index"] == 1)
    assert start["content_block"]["input"] == {}
    assert start["content_block"]["name"] == "get_weather"
    assert TOOL_ID.fullmatch(start["content_block"]["id"])
    pieces = partial_json(items)
    assert pieces == ["", *inputs]  # Anthropic opens the input with an empty piece
    assert len(inputs) > 2
    assert "".join(pieces) == '{"city": "Lyon", "unit": "celsius"}'
    assert json.loads("".join(pieces)) == INPUT
    assert items[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert items[-2]["usage"]["output_tokens"] == len(texts) + len(pieces) - 1
    assert fake.streams_completed == 1


@pytest.mark.parametrize(
    ("choice", "name"),
    [({"type": "any"}, "get_weather"), ({"type": "tool", "name": "get_time"}, "get_time")],
)
async def test_a_forced_call_comes_alone(
    fake: FakeAnthropic, session: aiohttp.ClientSession, choice: dict[str, Any], name: str
) -> None:
    request = body(tool_choice=choice)
    _, raw = await post(fake, session, request)
    items = events(raw)
    assert [item["type"] for item in items[:4]] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "ping",
    ]
    assert items[1]["content_block"]["type"] == "tool_use"
    assert items[1]["index"] == 0
    assert items[1]["content_block"]["name"] == name
    assert all(item.get("index", 0) == 0 for item in items)
    assert json.loads("".join(partial_json(items))) == fake.expected_tool_call(request)[1]
    assert fake.expected_tool_use(request).preamble == ""
    if name == "get_time":
        assert fake.expected_tool_call(request) == ("get_time", {"zone": "Lyon"})


async def test_not_streamed_the_message_has_text_and_tool_use(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    status, raw = await post(fake, session, body(stream=False))
    assert status == 200
    message = json.loads(raw)
    text, use = message["content"]
    assert text == {"type": "text", "text": "I'll use get_weather."}
    assert use["type"] == "tool_use"
    assert TOOL_ID.fullmatch(use["id"])
    assert (use["name"], use["input"]) == ("get_weather", INPUT)
    assert message["stop_reason"] == "tool_use"
    _, raw = await post(fake, session, body(stream=False, tool_choice={"type": "any"}))
    [use] = json.loads(raw)["content"]
    assert use["input"] == INPUT


async def test_a_tool_without_input_sends_only_the_empty_piece(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    request = body(tools=[NO_INPUT])
    _, raw = await post(fake, session, request)
    items = events(raw)
    assert partial_json(items) == [""]
    assert [(item["type"], item.get("index")) for item in items[-5:]] == [
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert fake.expected_tool_call(request) == ("roll_die", {})
    _, raw = await post(fake, session, body(stream=False, tools=[NO_INPUT]))
    assert json.loads(raw)["content"][-1]["input"] == {}


async def test_tool_choice_none_max_tokens_and_reply_option(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    request = body(stream=False, tool_choice={"type": "none"})
    assert not fake.will_call_tool(request)
    with pytest.raises(ValueError, match="answered with text"):
        fake.expected_tool_use(request)
    _, raw = await post(fake, session, request)
    assert json.loads(raw)["content"] == [{"type": "text", "text": "Hello! You said: Lyon"}]
    # A small budget does not cut a call short; a fixed reply replaces text only.
    fake.reply = "Fixed."
    _, raw = await post(fake, session, body(stream=False, max_tokens=1))
    message = json.loads(raw)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][-1]["input"] == INPUT


@pytest.mark.parametrize(
    "content", ["12°C", [{"type": "text", "text": "12°C"}]], ids=["string", "blocks"]
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_tool_result_is_answered_with_its_content(
    fake: FakeAnthropic, session: aiohttp.ClientSession, content: Any, stream: bool
) -> None:
    messages = [*USER, call(), {"role": "user", "content": [result(content=content)]}]
    request = body(stream=stream, messages=messages)
    assert not fake.will_call_tool(request)
    status, raw = await post(fake, session, request)
    assert status == 200
    if stream:
        items = events(raw)
        text = "".join(i["delta"].get("text", "") for i in items if "delta" in i and "index" in i)
        assert items[-2]["delta"]["stop_reason"] == "end_turn"
    else:
        [block] = json.loads(raw)["content"]
        text = block["text"]
    assert text == fake.expected_reply(messages) == "The tool said: 12°C"


async def test_two_results_and_the_users_words_after_them(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    second = {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}
    turn = call()
    turn["content"].append(second)
    answer = [result(), result("toolu_02", "noon"), {"type": "text", "text": "Thanks"}]
    messages = [*USER, turn, {"role": "user", "content": answer}]
    status, raw = await post(fake, session, body(stream=False, messages=messages))
    assert status == 200
    assert json.loads(raw)["content"][0]["text"] == "The tool said: 12°C; noon"


ANSWERED_LATE = (
    "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after:"
    " toolu_01A09q90qw90lq917835lq9X. Each `tool_use` block must have a corresponding"
    " `tool_result` block in the next message."
)


def unexpected(index: int, number: int, call_id: str) -> str:
    return (
        f"messages.{index}.content.{number}: unexpected `tool_use_id` found in `tool_result`"
        f" blocks: {call_id}. Each `tool_result` block must have a corresponding `tool_use`"
        " block in the previous message."
    )


TEXT_FIRST = [{"type": "text", "text": "here"}, result()]
BAD_CALLS: list[Any] = [
    pytest.param({"messages": [*USER, call(), *USER]}, ANSWERED_LATE, id="call-unanswered"),
    pytest.param({"messages": [*USER, call()]}, ANSWERED_LATE, id="call-last"),
    pytest.param(
        {"messages": [*USER, call(), {"role": "user", "content": TEXT_FIRST}]},
        ANSWERED_LATE,
        id="result-after-text",
    ),
    pytest.param(
        {"messages": [*USER, call(), {"role": "user", "content": [result("toolu_other")]}]},
        unexpected(2, 0, "toolu_other"),
        id="result-for-another-call",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [result()]}]},
        unexpected(0, 0, "toolu_01A09q90qw90lq917835lq9X"),
        id="result-first",
    ),
    pytest.param(
        {"messages": [*USER, call(), {"role": "user", "content": [result()]}], "tools": None},
        "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        id="no-tools",
    ),
    pytest.param(
        {"messages": [*USER, call("call:1"), {"role": "user", "content": [result("call:1")]}]},
        "messages.1.content.1.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
        id="call-id-pattern",
    ),
    pytest.param(
        {
            "messages": [
                *USER,
                {"role": "assistant", "content": [{**call()["content"][1], "input": "{}"}]},
            ]
        },
        "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        id="input-a-string",
    ),
    pytest.param(
        {"tools": [{"name": "get.weather", "input_schema": {"type": "object"}}]},
        "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        id="tool-name",
    ),
    pytest.param(
        {"tools": [WEATHER, {"name": "x"}]},
        "tools.1.custom.input_schema: Field required",
        id="no-schema",
    ),
    pytest.param(
        {"tools": [{"name": "x", "input_schema": {"properties": {}}}]},
        "tools.0.custom.input_schema.type: Field required",
        id="schema-without-type",
    ),
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": "x"}}]},
        "tools.0.custom.name: Field required",
        id="openai-shaped-tool",
    ),
    pytest.param(
        {"tools": None, "tool_choice": {"type": "any"}},
        "tool_choice.any may only be specified while providing tools",
        id="choice-without-tools",
    ),
    pytest.param(
        {"tool_choice": {"type": "required"}},
        "tool_choice: Input tag 'required' found using 'type' does not match any of the"
        " expected tags: 'auto', 'any', 'tool', 'none'",
        id="choice-openai-word",
    ),
    pytest.param(
        {"tool_choice": {"type": "tool"}}, "tool_choice.tool.name: Field required", id="no-name"
    ),
    pytest.param(
        {"tool_choice": {"type": "none", "disable_parallel_tool_use": True}},
        "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted",
        id="none-parallel",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD_CALLS)
async def test_tool_turns_are_validated_in_anthropic_words(
    fake: FakeAnthropic, session: aiohttp.ClientSession, changes: dict[str, Any], message: str
) -> None:
    request = {key: value for key, value in {**body(), **changes}.items() if value is not None}
    status, raw = await post(fake, session, request)
    assert status == 400
    error = json.loads(raw)
    assert error["type"] == "error"
    assert error["error"] == {"type": "invalid_request_error", "message": message}
    assert error["request_id"].startswith("req_")


async def test_a_valid_round_trip_with_parallel_calls_disabled(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    content = [result(), {"type": "text", "text": "and tomorrow?"}]
    messages = [*USER, call(), {"role": "user", "content": content}]
    status, raw = await post(fake, session, body(tool_choice=choice, messages=messages))
    assert status == 200
    assert events(raw)[-2]["delta"]["stop_reason"] == "end_turn"


async def test_a_dropped_tool_stream_ends_without_message_stop(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    request = body(model=FAULT_DROP, tool_choice={"type": "any"})
    async with session.post(f"{fake.base_url}/messages", json=request, headers=HEADERS) as resp:
        chunks, error = await collect(resp)
    assert isinstance(error, aiohttp.ClientPayloadError)
    raw = b"".join(chunks)
    assert b"tool_use" in raw
    assert b"message_stop" not in raw
