"""/v1/chat/completions to Google Gemini with the official openai SDK, over TCP, against the fake.

Function calls streamed and not, round trips with the tool's result (thought signatures kept),
tool_choice, parameters translated, and what Gemini cannot take refused with a clear 400.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from chatwire.families.gemini import SKIP_SIGNATURE
from tests.conftest import ServerFactory
from tests.fakes.fake_gemini import FakeGemini
from tests.openai_api._gemini import (
    ARGUMENTS,
    CALL_ID,
    GEMINI_3,
    MESSAGES,
    MODEL,
    TIME,
    TOOLS,
    WEATHER,
    Wired,
    foreign_call,
    start,
)


@pytest.fixture
async def wired(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async with FakeGemini() as fake:
        yield await start(make_server, fake)


def declared(*tools: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools as chatwire declares them to Gemini: the JSON schema as it is."""
    return [
        {
            "functionDeclarations": [
                {
                    "name": t["function"]["name"],
                    **({"description": d} if (d := t["function"].get("description")) else {}),
                    "parametersJsonSchema": t["function"]["parameters"],
                }
                for t in tools
            ]
        }
    ]


async def test_non_streaming_tool_call(wired: Wired) -> None:
    async with wired.openai() as client:
        answer = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert CALL_ID.fullmatch(call.id)
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", ARGUMENTS)
    assert wired.fake.expected_tool_call(wired.sent) == ("get_weather", ARGUMENTS)
    assert wired.sent["tools"] == declared(WEATHER)
    assert "toolConfig" not in wired.sent
    assert answer.model == MODEL


async def test_streamed_tool_call_is_openais_delta(wired: Wired) -> None:
    async with wired.openai() as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    [delta] = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert delta.index == 0
    assert delta.type == "function"
    assert delta.id is not None
    assert CALL_ID.fullmatch(delta.id)
    assert delta.function is not None
    assert delta.function.name == "get_weather"
    assert json.loads(delta.function.arguments or "") == ARGUMENTS
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]
    # Without include_usage, the usage rides on the finish chunk, as Mistral sends it.
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


async def test_the_sdks_stream_helper_assembles_the_call(wired: Wired) -> None:
    async with (
        wired.openai() as client,
        client.chat.completions.stream(model=MODEL, messages=MESSAGES, tools=TOOLS) as stream,
    ):
        final = await stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", ARGUMENTS)
    assert final.choices[0].finish_reason == "tool_calls"


def assistant_turn(message: Any, by_hand: bool) -> Any:
    """The assistant's turn sent back: as OpenAI's docs build it, or the SDK's own object."""
    if not by_hand:
        return message
    calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for call in message.tool_calls
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


@pytest.mark.parametrize("model", [MODEL, GEMINI_3])
@pytest.mark.parametrize("by_hand", [True, False], ids=["dict", "sdk-message"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_round_trip_with_the_tool_result(
    wired: Wired, stream: bool, by_hand: bool, model: str
) -> None:
    async with wired.openai() as client:
        first = await client.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS)
        message = first.choices[0].message
        [call] = message.tool_calls or []
        result = {"role": "tool", "tool_call_id": call.id, "content": "12°C and sunny"}
        messages = [*MESSAGES, assistant_turn(message, by_hand), result]
        if stream:
            chunks = [
                chunk
                async for chunk in await client.chat.completions.create(
                    model=model, messages=messages, tools=TOOLS, stream=True
                )
            ]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        else:
            answer = await client.chat.completions.create(
                model=model, messages=messages, tools=TOOLS
            )
            text = answer.choices[0].message.content or ""
            finish = answer.choices[0].finish_reason
    assert text == "The tool said: 12°C and sunny"
    assert finish == "stop"
    [signature] = wired.fake.signatures  # both models think, and sign their calls
    call_part = {"functionCall": {"name": "get_weather", "args": ARGUMENTS}}
    assert wired.sent["systemInstruction"] == {"parts": [{"text": "You are helpful."}]}
    assert wired.sent["contents"] == [
        {"role": "user", "parts": [{"text": "Lyon"}]},
        {"role": "model", "parts": [{**call_part, "thoughtSignature": signature}]},
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"output": "12°C and sunny"},
                    }
                }
            ],
        },
    ]
    assert text == wired.fake.expected_reply(wired.sent["contents"])


async def test_gemini_3_takes_a_call_it_did_not_sign(wired: Wired) -> None:
    """Gemini 3 refuses a call turn without its signature; for a call from elsewhere chatwire
    sends the stand-in Google documents, so the conversation goes on."""
    async with wired.openai() as client:
        answer = await client.chat.completions.create(
            model=GEMINI_3, messages=[*MESSAGES, *foreign_call()], tools=TOOLS
        )
    assert answer.choices[0].message.content == 'The tool said: {"temperature": 12}'
    model_turn, responses = wired.sent["contents"][1:]
    assert model_turn["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE
    response = {"name": "get_weather", "response": {"temperature": 12}}
    assert responses["parts"] == [{"functionResponse": response}]


async def test_tool_choice(wired: Wired) -> None:
    named: Any = {"type": "function", "function": {"name": "get_time"}}
    async with wired.openai() as client:
        call = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=[WEATHER, TIME], tool_choice=named
        )
        assert wired.sent["toolConfig"] == {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
        }
        text = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="none"
        )
        assert wired.sent["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
        await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="required"
        )
        assert wired.sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    [tool_call] = call.choices[0].message.tool_calls or []
    assert isinstance(tool_call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert (tool_call.function.name, json.loads(tool_call.function.arguments)) == (
        "get_time",
        {"zone": "Lyon"},
    )
    assert text.choices[0].finish_reason == "stop"
    assert text.choices[0].message.content == "Hello! You said: Lyon"


async def test_parameters_are_translated(wired: Wired) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    json_schema: Any = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    async with wired.openai() as client:
        await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=9,  # clamped to the catalogue's range
            max_completion_tokens=40,
            top_p=0.5,
            seed=7,
            presence_penalty=0.25,
            frequency_penalty=0.5,
            stop="END",
            response_format=json_schema,
            parallel_tool_calls=True,  # what Gemini does anyway
        )
        assert wired.sent["generationConfig"] == {
            "temperature": 2.0,
            "maxOutputTokens": 40,
            "topP": 0.5,
            "seed": 7,
            "presencePenalty": 0.25,
            "frequencyPenalty": 0.5,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": schema,
        }
        await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stop=["a", "b"],
            response_format={"type": "json_object"},
        )
    config = wired.sent["generationConfig"]
    assert (config["stopSequences"], config["responseMimeType"]) == (["a", "b"], "application/json")


IMAGE = "data:image/png;base64,iVBORw0KGgo="


async def test_image_parts_reach_gemini_inline(wired: Wired) -> None:
    content: Any = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": IMAGE}},
    ]
    async with wired.openai() as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": content}]
        )
    assert answer.choices[0].message.content == "Hello! You said: what is this?"
    assert wired.sent["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}},
    ]


REFUSED = [
    pytest.param({"logit_bias": {"1": 1}}, "'logit_bias'", id="unsupported"),
    pytest.param({"parallel_tool_calls": False}, "'parallel_tool_calls'", id="parallel-off"),
    pytest.param(
        {"messages": [*MESSAGES, *foreign_call("{not json")]},
        "messages[2].tool_calls[0].function.arguments is not valid JSON",
        id="arguments",
    ),
    pytest.param(
        {"messages": [*MESSAGES, foreign_call()[1]]},
        "messages[2] is a tool result for the call 'call_Qib2xfCV1qpazcvBOLg3wCNL'",
        id="unknown-call",
    ),
    pytest.param(
        {"tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice names the function 'nope'",
        id="tool-choice",
    ),
]


@pytest.mark.parametrize(("extra", "said"), REFUSED)
async def test_what_gemini_cannot_take_is_a_clear_400(
    wired: Wired, extra: dict[str, Any], said: str
) -> None:
    request = {"model": MODEL, "messages": MESSAGES, "tools": TOOLS, **extra}
    async with wired.openai() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(**request)
    assert said in str(caught.value)
    assert wired.fake.requests == []


async def test_dropped_when_the_operator_says_so(make_server: ServerFactory) -> None:
    async with FakeGemini() as fake:
        wired = await start(make_server, fake, drop_params=True)
        async with wired.openai() as client:
            answer = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, logit_bias={"1": 1}, user="u1", seed=3
            )
    assert answer.choices[0].message.content == "Hello! You said: Lyon"
    assert wired.sent["generationConfig"]["seed"] == 3
    assert set(wired.sent) == {"contents", "systemInstruction", "generationConfig"}


async def test_geminis_own_refusal_of_a_tool_turn_reaches_the_client(wired: Wired) -> None:
    """Two results for one call: Gemini's 400, in its own words."""
    extra: Any = {
        "role": "tool",
        "tool_call_id": "call_Qib2xfCV1qpazcvBOLg3wCNL",
        "content": "again",
    }
    async with wired.openai() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=[*MESSAGES, *foreign_call(), extra], tools=TOOLS
            )
    assert "Google Gemini answered 400: Please ensure that the number of function response" in str(
        caught.value
    )
