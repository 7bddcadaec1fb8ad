"""POST /v1/responses through the official openai SDK, over TCP, against the fake Mistral:
plain and streamed replies, tools and their results, structured output, reasoning effort,
usage, refusals and errors (stored responses: test_responses_stored)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import ResponseReasoningItem

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral
from tests.scripted import END, SSE_HEAD, ScriptedUpstream, Step, event

MODEL = "mistral/mistral-small-latest"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}


CLOSE: Any = {
    "type": "function",
    "name": "close_agent",
    "parameters": {"type": "object", "properties": {"target": {"type": "string"}}},
}


def sdk(server: Running, token: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=token or server.token, max_retries=0
    )


def sent(fake: FakeMistral) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json
    return body


async def test_a_plain_reply(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        response = await client.responses.create(
            model=MODEL, input="Say hello", instructions="You are terse."
        )
    expected = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent(fake)["messages"] == expected
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.instructions == "You are terse."
    assert response.output_text == fake.expected_reply(expected)
    [message] = response.output
    assert message.type == "message"
    assert message.status == "completed"
    assert message.id.startswith("msg_")
    assert response.usage is not None
    assert response.usage.input_tokens == 5  # the fake's count: a piece per word
    assert response.usage.output_tokens == len(fake.expected_pieces(expected))
    assert response.usage.total_tokens == 5 + response.usage.output_tokens


async def test_a_streamed_reply_in_openais_event_order(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        stream = await client.responses.create(model=MODEL, input="Say hello", stream=True)
        events = [event async for event in stream]
    pieces = fake.expected_pieces([{"role": "user", "content": "Say hello"}])
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(pieces),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert deltas == pieces
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == "".join(pieces)
    assert done.response.usage is not None
    assert len({event.response.id for event in events if hasattr(event, "response")}) == 1


async def test_the_sdks_stream_helper_gathers_the_reply(server: Running, fake: FakeMistral) -> None:
    async with (
        sdk(server) as client,
        client.responses.stream(model=MODEL, input="Say hello") as stream,
    ):
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == final.output_text
    assert final.output_text == fake.expected_reply([{"role": "user", "content": "Say hello"}])


async def test_a_tool_call_and_its_result(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        first = await client.responses.create(
            model=MODEL, input="Lyon", tools=[WEATHER], tool_choice="auto", store=False
        )
        [call] = first.output
        assert call.type == "function_call"
        name, arguments = fake.expected_tool_call(sent(fake))
        assert call.name == name == "get_weather"
        assert json.loads(call.arguments) == arguments
        assert sent(fake)["tools"] == [
            {
                "type": "function",
                "function": {k: v for k, v in WEATHER.items() if k != "type"},
            }
        ]
        second = await client.responses.create(
            model=MODEL,
            input=[
                {"role": "user", "content": "Lyon"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "12 C"},
            ],
            tools=[WEATHER],
        )
    messages = sent(fake)["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "12 C"}
    assert second.output_text == "The tool said: 12 C"


async def test_a_streamed_tool_call(server: Running, fake: FakeMistral) -> None:
    async with (
        sdk(server) as client,
        client.responses.stream(
            model=MODEL, input="Lyon", tools=[WEATHER], tool_choice="required"
        ) as stream,
    ):
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    [call] = final.output
    assert call.type == "function_call"
    assert json.loads(call.arguments) == fake.expected_tool_call(sent(fake))[1]
    assert sent(fake)["tool_choice"] == "required"


async def test_structured_output(server: Running, fake: FakeMistral) -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}
    async with sdk(server) as client:
        await client.responses.create(
            model=MODEL,
            input="Lyon",
            text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
        )
    assert sent(fake)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": schema},
    }


async def test_reasoning_effort_and_the_budget(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        response = await client.responses.create(
            model=MODEL, input="Say hello", reasoning={"effort": "high"}, max_output_tokens=2
        )
    assert sent(fake)["reasoning_effort"] == "high"
    assert sent(fake)["max_tokens"] == 2
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.reasoning is not None
    assert response.reasoning.effort == "high"


async def test_a_parameter_the_provider_refuses_is_named(
    server: Running, fake: FakeMistral
) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model=MODEL, input="Hi", user="alice")
        assert "Mistral does not accept the parameter 'user'" in str(caught.value)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model=MODEL, input="Hi", tools=[{"type": "web_search"}])
        assert "tools[0] (type 'web_search')" in str(caught.value)
    assert fake.requests == []


async def test_drop_params_drops_what_cannot_be_taken(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(drop_params=True)
    async with sdk(server) as client:
        response = await client.responses.create(
            model=MODEL, input="Hi", user="alice", tools=[{"type": "web_search"}], background=False
        )
    assert response.status == "completed"
    assert "user" not in sent(fake)
    assert "tools" not in sent(fake)


async def test_bad_requests_are_openai_shaped_400s(server: Running) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": "Hi"}, "model"),
        ({"model": MODEL, "input": 3}, "'input' must be a string or a list"),
        ({"model": MODEL, "input": [{"type": "web_search_call", "id": "x"}]}, "web_search_call"),
        ({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": []}, "'input' is empty"),
        ({"model": MODEL, "input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": MODEL, "input": "Hi", "text": {"format": {"type": "xml"}}}, "text.format"),
    ]
    for body, said in cases:
        resp = await server.client.post("/v1/responses", json=body, headers=server.auth)
        assert resp.status_code == 400, body
        error = resp.json()["error"]
        assert said in error["message"], (body, error)
        assert error["type"] == "invalid_request_error"


async def test_unknown_provider_errors_arrive_as_the_sdks_classes(server: Running) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="mistral/fake-429", input="Hi", stream=True)
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model="no-such-model", input="Hi")
    resp = await server.client.get("/v1/responses", headers=server.auth)
    assert resp.status_code == 405


async def test_without_a_token_401(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        resp = await client.post("/v1/responses", json={"model": MODEL, "input": "Hi"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


def _chunk(change: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    choice = {"index": 0, "delta": change, "finish_reason": finish}
    return event(json.dumps({**body, "choices": [choice]}).encode())


REPORTED = {
    "prompt_tokens": 37,
    "completion_tokens": 11,
    "total_tokens": 48,
    "prompt_tokens_details": {"cached_tokens": 5},
    "completion_tokens_details": {"reasoning_tokens": 3},
}
REASONING_SCRIPT: list[Step] = [
    SSE_HEAD,
    _chunk({"role": "assistant", "reasoning_content": "Thinking"}),
    _chunk({"reasoning_content": " hard"}),
    _chunk({"content": "Hi"}),
    _chunk({"content": " there"}, finish="stop"),
    event(json.dumps({"id": "x", "choices": [], "usage": REPORTED}).encode()),
    event(b"[DONE]"),
    END,
]


@pytest.fixture
async def reasoning(make_server: ServerFactory) -> AsyncIterator[Running]:
    scripted = ScriptedUpstream(REASONING_SCRIPT)
    await scripted.start()
    try:
        yield await make_server(openai_base_url=scripted.base_url, openai_api_key="k")
    finally:
        await scripted.stop()


async def test_reasoning_becomes_a_summary_and_usage_arrives_unchanged(
    reasoning: Running,
) -> None:
    async with sdk(reasoning) as client:
        stream = await client.responses.create(
            model="openai/gpt-5-mini", input="Hi", reasoning={"effort": "low"}, stream=True
        )
        events = [e async for e in stream]
        whole = await client.responses.create(model="openai/gpt-5-mini", input="Hi")
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    for response in (events[-1].response, whole):  # type: ignore[union-attr]
        thought, message = response.output
        assert isinstance(thought, ResponseReasoningItem)
        assert message.type == "message"
        assert [s.text for s in thought.summary] == ["Thinking hard"]
        assert response.output_text == "Hi there"
        assert response.usage is not None
        assert response.usage.model_dump(exclude_none=True) == {
            "input_tokens": 37,
            "input_tokens_details": {"cached_tokens": 5},
            "output_tokens": 11,
            "output_tokens_details": {"reasoning_tokens": 3},
            "total_tokens": 48,
        }


async def test_reasoning_items_given_back_are_dropped(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        await client.responses.create(
            model=MODEL,
            input=[
                {"role": "user", "content": "Hi"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "x"}],
                },
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": [{"type": "input_text", "text": "Again"}]},
            ],
        )
    assert sent(fake)["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    ]


async def test_a_codex_style_request(server: Running, fake: FakeMistral) -> None:
    """What Codex CLI sends: developer instructions as input, hints it needs no answer to,
    its tools with strict off, no storing; the events it reads come as OpenAI sends them."""
    body = {
        "model": MODEL,
        "instructions": "You are a coding agent.",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Work in /tmp."}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        ],
        "tools": [
            {**WEATHER, "strict": False},
            {"type": "namespace", "name": "agents", "description": "Sub-agents.", "tools": [CLOSE]},
        ],
        "tool_choice": "auto",
        "client_metadata": {"session_id": "01a234c8"},
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0b6f9f1e",
        "text": {"verbosity": "medium"},
    }
    async with server.client.stream(
        "POST", "/v1/responses", json=body, headers=server.auth
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        text = (await resp.aread()).decode()
    blocks = [block for block in text.split("\n\n") if block]
    kinds = [block.split("\n")[0].removeprefix("event: ") for block in blocks]
    datas = [json.loads(block.split("\n")[1].removeprefix("data: ")) for block in blocks]
    assert [data["type"] for data in datas] == kinds
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    done = datas[-1]["response"]
    assert done["store"] is False
    assert done["parallel_tool_calls"] is False
    assert done["reasoning"] == {"effort": "medium", "summary": "auto"}
    sent_body = sent(fake)
    assert sent_body["messages"][:2] == [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "system", "content": "Work in /tmp."},
    ]
    assert sent_body["parallel_tool_calls"] is False
    assert sent_body["reasoning_effort"] == "medium"
    assert sent_body["tools"][0]["function"]["strict"] is False
    assert sent_body["tools"][1]["function"]["name"] == "close_agent"
    for hint in ("include", "prompt_cache_key", "verbosity", "store", "client_metadata"):
        assert hint not in sent_body
    got = await server.client.get(f"/v1/responses/{done['id']}", headers=server.auth)
    assert got.status_code == 404


async def test_settings_are_echoed_and_images_pass(server: Running, fake: FakeMistral) -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    async with sdk(server) as client:
        response = await client.responses.create(
            model=MODEL,
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is it?"},
                        {"type": "input_image", "image_url": image, "detail": "low"},
                    ],
                }
            ],
            metadata={"ticket": "42"},
            temperature=0.2,
            top_p=0.9,
        )
    assert response.metadata == {"ticket": "42"}
    assert response.temperature == 0.2
    assert response.top_p == 0.9
    assert sent(fake)["messages"][0]["content"] == [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
    ]
    assert "metadata" not in sent(fake)


async def test_the_sdk_reads_a_failure_mid_stream(server: Running) -> None:
    async with sdk(server) as client:
        stream = await client.responses.create(model="mistral/fake-drop", input="Hi", stream=True)
        events = [event async for event in stream]
    error, failed = events[-2:]
    assert error.type == "error"
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.message == error.message
    assert "Mistral" in error.message
    texts = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(texts) == 2  # the fault sends two pieces, then drops the connection


async def test_too_many_item_references_are_refused(server: Running) -> None:
    refs = [{"type": "item_reference", "id": f"msg_{n}"} for n in range(1001)]
    resp = await server.client.post(
        "/v1/responses", json={"model": MODEL, "input": refs}, headers=server.auth
    )
    assert resp.status_code == 400
    assert "1001 item references" in resp.json()["error"]["message"]


async def test_the_sdks_parse_helper_gets_the_structured_reply(
    server: Running, fake: FakeMistral
) -> None:
    class Place(pydantic.BaseModel):
        city: str

    fake.reply = '{"city": "Lyon"}'
    async with sdk(server) as client:
        parsed = await client.responses.parse(model=MODEL, input="Where?", text_format=Place)
    assert parsed.output_parsed == Place(city="Lyon")
    response_format = sent(fake)["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Place"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"]["properties"] == {
        "city": {"title": "City", "type": "string"}
    }


async def test_a_namespaced_functions_call_names_its_namespace(
    server: Running, fake: FakeMistral
) -> None:
    body = {
        "model": MODEL,
        "input": "Close it",
        "tools": [{"type": "namespace", "name": "agents", "tools": [CLOSE]}],
        "tool_choice": {"type": "function", "name": "close_agent"},
    }
    resp = await server.client.post("/v1/responses", json=body, headers=server.auth)
    assert resp.status_code == 200, resp.text
    [call] = resp.json()["output"]
    assert (call["type"], call["name"], call["namespace"]) == (
        "function_call",
        "close_agent",
        "agents",
    )
    assert sent(fake)["tools"] == [
        {"type": "function", "function": {k: v for k, v in CLOSE.items() if k != "type"}}
    ]
    assert sent(fake)["tool_choice"] == {"type": "function", "function": {"name": "close_agent"}}
