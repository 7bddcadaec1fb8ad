"""Tool calling in the fake Mistral and OpenAI upstreams, over real TCP with aiohttp's client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes import FakeMistral, FakeOpenAI
from tests.fakes._faults import FAULT_DROP, FAULT_STALL_MID
from tests.fakes._text import compact
from tests.fakes._tool_calls import (
    argument_fragments,
    arguments_for,
    planned_call,
    tool_result_text,
)
from tests.test_fakes._helpers import collect, read_for

MISTRAL_AUTH = {"Authorization": "Bearer fake-mistral-key"}
OPENAI_AUTH = {"Authorization": "Bearer fake-openai-key"}
MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
OPENAI_ID = re.compile(r"call_[A-Za-z0-9]{24}")
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1},
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
TOOLS = [WEATHER, TIME]
USER = [{"role": "user", "content": "Lyon"}]
ARGUMENTS = {"city": "Lyon", "unit": "celsius"}


def assistant_call(call_id: str, name: str = "get_weather") -> dict[str, Any]:
    function = {"name": name, "arguments": compact(ARGUMENTS)}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


def tool_result(call_id: str | None, content: Any = "12°C") -> dict[str, Any]:
    message = {"role": "tool", "content": content}
    return message if call_id is None else {**message, "tool_call_id": call_id}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def mistral() -> AsyncIterator[FakeMistral]:
    async with FakeMistral() as fake:
        yield fake


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def events(raw: bytes) -> list[Any]:
    data = [event.removeprefix("data: ") for event in raw.decode().split("\n\n") if event]
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


# The arguments a call gets, from its schema


@pytest.mark.parametrize(
    ("schema", "arguments"),
    [
        (WEATHER["function"]["parameters"], {"city": "hi", "unit": "celsius"}),
        ({"type": "object", "properties": {"q": {"type": "string"}, "n": {}}}, {"q": "hi"}),
        (
            {
                "type": "object",
                "properties": {
                    "n": {"type": "integer"},
                    "x": {"type": "number", "minimum": 0.5},
                    "a": {"type": "string"},
                    "b": {"type": "string"},
                    "on": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "none": {"type": "null"},
                    "kind": {"const": "fixed"},
                    "maybe": {"type": ["string", "null"]},
                    "either": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3}]},
                    "where": {
                        "type": "object",
                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                        "required": ["lat", "lon"],
                    },
                },
                "required": [
                    "n",
                    "x",
                    "a",
                    "b",
                    "on",
                    "tags",
                    "none",
                    "kind",
                    "maybe",
                    "either",
                    "where",
                    "not-a-property",
                ],
            },
            {
                "n": 1,
                "x": 0.5,
                "a": "hi",
                "b": "b",
                "on": True,
                "tags": [],
                "none": None,
                "kind": "fixed",
                "maybe": "maybe",
                "either": 3,
                "where": {"lat": 1, "lon": 1},
            },
        ),
        ({"type": "object", "properties": {}}, {}),
        ({"type": "object"}, {}),
        (None, {}),
    ],
)
def test_arguments_come_from_the_schema(schema: Any, arguments: dict[str, Any]) -> None:
    assert arguments_for(schema, "hi") == arguments


@pytest.mark.parametrize(
    ("request_body", "call"),
    [
        ({"messages": USER, "tools": TOOLS}, ("get_weather", ARGUMENTS)),
        ({"messages": USER, "tools": TOOLS, "tool_choice": "auto"}, ("get_weather", ARGUMENTS)),
        ({"messages": USER, "tools": TOOLS, "tool_choice": "any"}, ("get_weather", ARGUMENTS)),
        (
            {
                "messages": USER,
                "tools": TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            },
            ("get_time", {"zone": "Lyon"}),
        ),
        (
            {"messages": USER, "tools": [{"type": "custom", "custom": {"name": "x"}}, TIME]},
            ("get_time", {"zone": "Lyon"}),
        ),
        ({"messages": USER, "tools": TOOLS, "tool_choice": "none"}, None),
        ({"messages": USER, "tools": []}, None),
        ({"messages": USER, "tools": None}, None),
        ({"messages": USER}, None),
        ({"messages": [*USER, assistant_call("abcDEF123"), tool_result("abcDEF123")]}, None),
        ({"messages": [*USER, {"role": "assistant", "content": "Su", "prefix": True}]}, None),
    ],
)
async def test_which_requests_get_a_call(
    mistral: FakeMistral,
    openai: FakeOpenAI,
    request_body: dict[str, Any],
    call: tuple[str, dict[str, Any]] | None,
) -> None:
    planned = planned_call(request_body)
    assert (None if planned is None else (planned.name, planned.arguments)) == call
    for fake in (mistral, openai):
        assert fake.will_call_tool(request_body) is (call is not None)
        if call is None:
            with pytest.raises(ValueError, match="answered with text"):
                fake.expected_tool_call(request_body)
        else:
            assert fake.expected_tool_call(request_body) == call


def test_tool_results_are_said_back() -> None:
    assert tool_result_text(USER) is None
    assert tool_result_text([*USER, tool_result("a")]) == "The tool said: 12°C"
    two = [tool_result("a", "12°C"), tool_result("b", [{"type": "text", "text": "rain"}])]
    assert tool_result_text([*USER, *two]) == "The tool said: 12°C; rain"
    assert tool_result_text([tool_result("a", "")]) == "The tool said nothing."


def test_argument_fragments_rebuild_the_arguments() -> None:
    arguments = compact({"city": "Saint-Étienne, FR", "days": 3, "tags": ["a b"]})
    fragments = argument_fragments(arguments)
    assert "".join(fragments) == arguments
    assert fragments[:3] == ['{"', "city", '":"']


# Mistral


def mistral_body(stream: bool, **extra: Any) -> dict[str, Any]:
    body = {"model": "mistral-small-latest", "messages": USER, "tools": TOOLS, "stream": stream}
    return {**body, **extra}


async def post(
    session: aiohttp.ClientSession, fake: FakeMistral | FakeOpenAI, body: Any
) -> tuple[int, bytes]:
    auth = MISTRAL_AUTH if isinstance(fake, FakeMistral) else OPENAI_AUTH
    async with session.post(f"{fake.base_url}/chat/completions", json=body, headers=auth) as resp:
        return resp.status, await resp.read()


async def test_mistral_streams_the_whole_call_in_one_chunk(
    mistral: FakeMistral, session: aiohttp.ClientSession
) -> None:
    status, raw = await post(session, mistral, mistral_body(True))
    assert status == 200
    role, call_chunk = events(raw)
    assert role["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    [choice] = call_chunk["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert set(choice["delta"]) == {"content", "tool_calls"}
    assert choice["delta"]["content"] is None
    [call] = choice["delta"]["tool_calls"]
    assert set(call) == {"id", "function"}  # no type, no index: as Mistral sends it
    assert MISTRAL_ID.fullmatch(call["id"])
    assert call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"] == '{"city": "Lyon", "unit": "celsius"}'
    usage = call_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert mistral.expected_tool_call(mistral_body(True)) == ("get_weather", ARGUMENTS)
    assert mistral.streams_completed == 1


async def test_mistral_completion_with_a_call(
    mistral: FakeMistral, session: aiohttp.ClientSession
) -> None:
    status, raw = await post(session, mistral, mistral_body(False, max_tokens=1))
    assert status == 200
    [choice] = json.loads(raw)["choices"]
    assert choice["finish_reason"] == "tool_calls"  # max_tokens does not cut a call
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["content"] == ""
    [call] = message["tool_calls"]
    assert MISTRAL_ID.fullmatch(call["id"])
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "get_weather",
        ARGUMENTS,
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_mistral_says_the_tool_result(
    mistral: FakeMistral, session: aiohttp.ClientSession, stream: bool
) -> None:
    messages = [*USER, assistant_call("abcDEF123"), tool_result("abcDEF123")]
    status, raw = await post(session, mistral, mistral_body(stream, messages=messages))
    assert status == 200
    if stream:
        chunks = events(raw)
        text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    else:
        text = json.loads(raw)["choices"][0]["message"]["content"]
    assert text == mistral.expected_reply(messages) == "The tool said: 12°C"


async def test_mistral_tool_choice_none_answers_with_text(
    mistral: FakeMistral, session: aiohttp.ClientSession
) -> None:
    status, raw = await post(session, mistral, mistral_body(False, tool_choice="none"))
    assert status == 200
    message = json.loads(raw)["choices"][0]["message"]
    assert message == {"role": "assistant", "tool_calls": None, "content": "Hello! You said: Lyon"}


async def test_mistral_reply_option_still_calls_tools(session: aiohttp.ClientSession) -> None:
    async with FakeMistral(reply="fixed") as fake:
        _, raw = await post(session, fake, mistral_body(False))
    assert json.loads(raw)["choices"][0]["finish_reason"] == "tool_calls"


async def test_mistral_drop_after_the_call_chunk(
    mistral: FakeMistral, session: aiohttp.ClientSession
) -> None:
    body = mistral_body(True, model=FAULT_DROP)
    async with session.post(
        f"{mistral.base_url}/chat/completions", json=body, headers=MISTRAL_AUTH
    ) as resp:
        chunks, error = await collect(resp)
    assert isinstance(error, aiohttp.ClientPayloadError)
    received = b"".join(chunks)
    assert b"[DONE]" not in received
    assert b'"tool_calls":[{"id"' in received
    assert b'"finish_reason":"tool_calls"' not in received


async def test_mistral_accepts_null_tools(
    mistral: FakeMistral, session: aiohttp.ClientSession
) -> None:
    status, _ = await post(session, mistral, mistral_body(False, tools=None, tool_choice=None))
    assert status == 200


@pytest.mark.parametrize(
    ("extra", "kind", "loc"),
    [
        ({"tools": {"type": "function"}}, "list_type", ["body", "tools"]),
        ({"tools": [{"type": "function"}]}, "missing", ["body", "tools", 0, "function"]),
        (
            {"tools": [{"type": "function", "function": {"parameters": {}}}]},
            "missing",
            ["body", "tools", 0, "function", "name"],
        ),
        ({"tool_choice": "sometimes"}, "enum", ["body", "tool_choice"]),
        (
            {"tool_choice": {"type": "function", "function": {}}},
            "missing",
            ["body", "tool_choice", "function", "name"],
        ),
        (
            {
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "abcDEF123", "function": {"arguments": "{}"}}],
                    },
                    tool_result("abcDEF123"),
                ]
            },
            "missing",
            ["body", "messages", 1, "assistant", "tool_calls", 0, "function", "name"],
        ),
        (
            {"messages": [*USER, {"role": "assistant", "tool_calls": "f()"}]},
            "list_type",
            ["body", "messages", 1, "assistant", "tool_calls"],
        ),
        (
            {
                "messages": [
                    *USER,
                    assistant_call("abcDEF123"),
                    tool_result(None) | {"tool_call_id": 7},
                ]
            },
            "string_type",
            ["body", "messages", 2, "tool", "tool_call_id"],
        ),
        (
            {
                "messages": [
                    *USER,
                    assistant_call("abcDEF123"),
                    {**tool_result("abcDEF123"), "id": 1},
                ]
            },
            "extra_forbidden",
            ["body", "messages", 2, "tool", "id"],
        ),
    ],
)
async def test_mistral_tool_fields_are_validated_422(
    mistral: FakeMistral,
    session: aiohttp.ClientSession,
    extra: dict[str, Any],
    kind: str,
    loc: list[Any],
) -> None:
    status, raw = await post(session, mistral, mistral_body(False, **extra))
    assert status == 422
    [detail] = json.loads(raw)["message"]["detail"]
    assert (detail["type"], detail["loc"]) == (kind, loc)


def mistral_400(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


ORDER = "invalid_request_message_order"


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (
            [*USER, assistant_call("abcDEF123"), tool_result("abcDEF123"), *USER],
            mistral_400("Unexpected role 'user' after role 'tool'", ORDER, "3230"),
        ),
        (
            [*USER, tool_result("abcDEF123")],
            mistral_400("Unexpected role 'tool' after role 'user'", ORDER, "3230"),
        ),
        (
            [*USER, assistant_call("abcDEF123"), tool_result("abcDEF123"), tool_result("x")],
            mistral_400(
                "Not the same number of function calls and responses",
                "invalid_request_error",
                None,
            ),
        ),
        (
            [*USER, {"role": "assistant", "content": "hm"}, tool_result("abcDEF123")],
            mistral_400(
                "Not the same number of function calls and responses",
                "invalid_request_error",
                None,
            ),
        ),
        (
            [*USER, assistant_call("abcDEF123"), tool_result(None)],
            mistral_400("Tool call id has to be defined.", "invalid_request_error", None),
        ),
        (
            [
                *USER,
                {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": ""}}]},
                tool_result("abcDEF123"),
            ],
            mistral_400(
                "Tool call id has to be defined in serving mode.", "invalid_request_error", None
            ),
        ),
        (
            [*USER, assistant_call("call_1"), tool_result("call_1")],
            mistral_400(
                "Tool call id was call_1 but must be a-z, A-Z, 0-9, with a length of 9.",
                "invalid_function_call",
                "3280",
            )
            | {"raw_status_code": 400},
        ),
        (
            [*USER, assistant_call("abcDEF123"), tool_result("abc-EF123")],
            mistral_400(
                "Tool call id was abc-EF123 but must be a-z, A-Z, 0-9, with a length of 9.",
                "invalid_function_call",
                "3280",
            )
            | {"raw_status_code": 400},
        ),
    ],
)
async def test_mistral_conversation_rules_are_400(
    mistral: FakeMistral,
    session: aiohttp.ClientSession,
    messages: list[dict[str, Any]],
    error: dict[str, Any],
) -> None:
    status, raw = await post(session, mistral, mistral_body(False, messages=messages))
    assert status == 400
    assert json.loads(raw) == error


# OpenAI


def openai_body(stream: bool, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": USER, "tools": TOOLS, "stream": stream, **extra}


async def test_openai_streams_the_call_by_fragments(
    openai: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    body = openai_body(True, stream_options={"include_usage": True})
    status, raw = await post(session, openai, body)
    assert status == 200
    chunks = events(raw)
    first = chunks[0]["choices"][0]
    [header] = first["delta"]["tool_calls"]
    assert first["delta"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [header],
        "refusal": None,
    }
    assert OPENAI_ID.fullmatch(header["id"])
    assert header == {
        "index": 0,
        "id": header["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    fragments = chunks[1:-2]
    assert all(
        chunk["choices"][0]["delta"].keys() == {"tool_calls"}
        and chunk["choices"][0]["delta"]["tool_calls"][0].keys() == {"index", "function"}
        for chunk in fragments
    )
    arguments = "".join(
        chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for chunk in fragments
    )
    assert arguments == '{"city":"Lyon","unit":"celsius"}'
    assert len(fragments) > 2
    assert chunks[-2]["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    ]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(fragments)
    assert openai.expected_tool_call(body) == ("get_weather", ARGUMENTS)


async def test_openai_completion_with_a_call(
    openai: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    status, raw = await post(session, openai, openai_body(False))
    assert status == 200
    [choice] = json.loads(raw)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [call],
        "refusal": None,
        "annotations": [],
    }
    assert OPENAI_ID.fullmatch(call["id"])
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": compact(ARGUMENTS)}


async def test_openai_says_the_tool_result(
    openai: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    messages = [*USER, assistant_call("call_1"), tool_result("call_1")]
    status, raw = await post(session, openai, openai_body(False, messages=messages))
    assert status == 200
    answer = json.loads(raw)["choices"][0]
    assert answer["finish_reason"] == "stop"
    assert answer["message"]["content"] == openai.expected_reply(messages)
    assert openai.expected_reply(messages) == "The tool said: 12°C"


async def test_azure_streams_a_call_with_its_filters(session: aiohttp.ClientSession) -> None:
    async with FakeOpenAI() as fake:
        url = f"{fake.root_url}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        body = {"messages": USER, "tools": TOOLS, "stream": True}
        async with session.post(url, json=body, headers={"api-key": "fake-openai-key"}) as resp:
            chunks = events(await resp.read())
    assert chunks[0]["choices"] == []
    assert "prompt_filter_results" in chunks[0]
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert all("content_filter_results" in chunk["choices"][0] for chunk in chunks[1:])
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_openai_stall_mid_call(openai: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    body = openai_body(True, model=FAULT_STALL_MID)
    async with session.post(
        f"{openai.base_url}/chat/completions", json=body, headers=OPENAI_AUTH
    ) as resp:
        raw, still_open = await read_for(resp, 0.2)
    assert still_open
    assert raw.count(b"data: ") == 3  # the call's first chunk and two fragments
    await openai.wait_for_connections(0)


@pytest.mark.parametrize(
    ("messages", "tools", "message", "param", "code"),
    [
        (
            [*USER, assistant_call("call_1"), tool_result(None)],
            TOOLS,
            "Missing parameter 'tool_call_id': messages with role 'tool' must have a"
            " 'tool_call_id'.",
            "messages.[2].tool_call_id",
            None,
        ),
        (
            [*USER, tool_result("call_1")],
            TOOLS,
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding"
            " message with 'tool_calls'.",
            "messages.[1].role",
            None,
        ),
        (
            [*USER, assistant_call("call_1"), tool_result("call_2")],
            TOOLS,
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding"
            " message with 'tool_calls'.",
            "messages.[2].role",
            None,
        ),
        (
            [*USER, assistant_call("call_1"), *USER],
            TOOLS,
            "An assistant message with 'tool_calls' must be followed by tool messages"
            " responding to each 'tool_call_id'. The following tool_call_ids did not have"
            " response messages: call_1",
            "messages",
            None,
        ),
        (
            [*USER, {"role": "assistant", "tool_calls": [{"type": "function"}]}],
            TOOLS,
            "Missing required parameter: 'messages[1].tool_calls[0].id'.",
            "messages[1].tool_calls[0].id",
            "missing_required_parameter",
        ),
        (
            USER,
            {"type": "function"},
            "Invalid type for 'tools': expected an array, but got an object instead.",
            "tools",
            "invalid_type",
        ),
        (
            USER,
            [TIME, {"type": "function"}],
            "Missing required parameter: 'tools[1].function'.",
            "tools[1].function",
            "missing_required_parameter",
        ),
        (
            USER,
            [{"type": "function", "function": {"parameters": {}}}],
            "Missing required parameter: 'tools[0].function.name'.",
            "tools[0].function.name",
            "missing_required_parameter",
        ),
    ],
)
async def test_openai_tool_rules_are_400(
    openai: FakeOpenAI,
    session: aiohttp.ClientSession,
    messages: list[dict[str, Any]],
    tools: Any,
    message: str,
    param: str,
    code: str | None,
) -> None:
    status, raw = await post(session, openai, openai_body(False, messages=messages, tools=tools))
    assert status == 400
    assert json.loads(raw)["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }
