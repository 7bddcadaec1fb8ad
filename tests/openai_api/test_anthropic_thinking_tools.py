"""Extended thinking through a tool loop to Anthropic, with the openai SDK over TCP.

With thinking on, Anthropic refuses a turn whose last tool-calling assistant message does not
start with its signed thinking block (the fake Anthropic does too, and checks the
signature). The signature goes out as a Responses reasoning item's ``encrypted_content``, or
as ``reasoning_signature`` on /v1/chat/completions, and comes back the same way: by
``previous_response_id``, by the items given back, or in the assistant message. A tool-calling
turn given back without its thinking turns thinking off for that request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_openai import FakeOpenAI

MODEL = "anthropic/claude-sonnet-4-5"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city", "unit"],
    },
}
CHAT_WEATHER: Any = {
    "type": "function",
    "function": {key: value for key, value in WEATHER.items() if key != "type"},
}


@dataclass
class Wired:
    fake: FakeAnthropic
    server: Running

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.server.url}/v1", api_key=self.server.token, max_retries=0
        )

    def sent(self, number: int = -1) -> dict[str, Any]:
        body: dict[str, Any] = self.fake.requests[number].json
        return body

    def thinking_block(self, number: int) -> dict[str, Any]:
        """The thinking block the fake signed for its ``number``th request."""
        thinking = self.fake.thinking_of(self.sent(number))
        assert thinking is not None
        return {"type": "thinking", "thinking": thinking.text, "signature": thinking.signature}


@pytest.fixture
async def wired(make_server: ServerFactory) -> AsyncIterator[Wired]:
    fake = FakeAnthropic()
    base = await fake.start()
    try:
        settings = {"anthropic_base_url": base, "anthropic_api_key": fake.api_key}
        yield Wired(fake, await make_server(stored_key=None, **settings))
    finally:
        await fake.stop()


def result(call_id: str) -> Any:
    return {"type": "function_call_output", "call_id": call_id, "output": "12 C"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_responses_by_previous_response_id(wired: Wired, stream: bool) -> None:
    first: Response
    async with wired.openai() as client:
        if stream:
            async with client.responses.stream(
                model=MODEL, input="Lyon", tools=[WEATHER], reasoning={"effort": "low"}
            ) as events:
                first = await events.get_final_response()
        else:
            first = await client.responses.create(
                model=MODEL, input="Lyon", tools=[WEATHER], reasoning={"effort": "low"}
            )
        signed = wired.thinking_block(-1)
        reasoning, _, call = first.output
        assert reasoning.type == "reasoning"
        assert reasoning.encrypted_content == signed["signature"]
        assert [part.text for part in reasoning.summary] == [signed["thinking"]]
        assert call.type == "function_call"
        second = await client.responses.create(
            model=MODEL,
            input=[result(call.call_id)],
            previous_response_id=first.id,
            tools=[WEATHER],
            reasoning={"effort": "low"},
        )
    assert second.output_text == "The tool said: 12 C"
    sent = wired.sent()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["messages"][1]["role"] == "assistant"
    assert sent["messages"][1]["content"][0] == signed
    assert [block["type"] for block in sent["messages"][1]["content"]] == [
        "thinking",
        "text",
        "tool_use",
    ]


async def test_responses_by_the_items_given_back(wired: Wired) -> None:
    asked: Any = {
        "model": MODEL,
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }
    async with wired.openai() as client:
        first = await client.responses.create(input="Lyon", **asked)
        signed = wired.thinking_block(-1)
        given = [item.model_dump(exclude_none=True) for item in first.output]
        [call] = [item for item in first.output if item.type == "function_call"]
        history: list[Any] = [{"role": "user", "content": "Lyon"}, *given, result(call.call_id)]
        second = await client.responses.create(input=history, **asked)
        # The thinking left out: the request goes without thinking, as Anthropic allows.
        bare = [item for item in history if item.get("type") != "reasoning"]
        third = await client.responses.create(input=bare, **asked)
    assert second.output_text == third.output_text == "The tool said: 12 C"
    with_thinking, without = wired.sent(-2), wired.sent(-1)
    assert with_thinking["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert with_thinking["messages"][1]["content"][0] == signed
    assert "thinking" not in without
    assert [block["type"] for block in without["messages"][1]["content"]] == ["text", "tool_use"]


async def test_the_fake_refuses_a_tool_turn_without_its_thinking(wired: Wired) -> None:
    """What a request without the fallback gets: Anthropic's 400, relayed as OpenAI's."""
    history: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Lyon"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C"}],
        },
    ]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": history,
    }
    headers = {"anthropic-version": "2023-06-01", **wired.server.auth}
    refused = await wired.server.client.post("/v1/messages", json=body, headers=headers)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(
        "Anthropic answered 400: messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found"
        " `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a"
        " thinking block"
    )
    forged = {"type": "thinking", "thinking": "Something else", "signature": "bm90IGl0"}
    history[1]["content"].insert(0, forged)
    refused = await wired.server.client.post("/v1/messages", json=body, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "Anthropic answered 400: messages.1.content.0: Invalid `signature` in `thinking` block"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_chat_completions_round_trip(wired: Wired, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": "Lyon"}]
    asked: Any = {"model": MODEL, "tools": [CHAT_WEATHER], "reasoning_effort": "low"}
    call: dict[str, Any]
    async with wired.openai() as client:
        if stream:
            chunks = [
                chunk
                async for chunk in await client.chat.completions.create(
                    messages=messages, stream=True, **asked
                )
            ]
            deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
            extra = [delta.model_extra or {} for delta in deltas]
            reasoning = "".join(e.get("reasoning_content") or "" for e in extra)
            [signature] = [e["reasoning_signature"] for e in extra if "reasoning_signature" in e]
            content = "".join(delta.content or "" for delta in deltas)
            [piece] = [call for delta in deltas for call in delta.tool_calls or ()]
            assert piece.function is not None
            call = {
                "id": piece.id,
                "type": "function",
                "function": {"name": piece.function.name, "arguments": piece.function.arguments},
            }
        else:
            answer = await client.chat.completions.create(messages=messages, **asked)
            message = answer.choices[0].message
            fields = message.model_extra or {}
            reasoning, signature = fields["reasoning_content"], fields["reasoning_signature"]
            content = message.content or ""
            assert message.tool_calls is not None
            call = message.tool_calls[0].model_dump()
        signed = wired.thinking_block(-1)
        assert (reasoning, signature) == (signed["thinking"], signed["signature"])
        given: Any = {
            "role": "assistant",
            "content": content,
            "tool_calls": [call],
            "reasoning_content": reasoning,
            "reasoning_signature": signature,
        }
        tool: Any = {"role": "tool", "tool_call_id": call["id"], "content": "12 C"}
        second = await client.chat.completions.create(messages=[*messages, given, tool], **asked)
    assert second.choices[0].message.content == "The tool said: 12 C"
    sent = wired.sent()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["messages"][1]["content"][0] == signed
    assert json.loads(call["function"]["arguments"]) == sent["messages"][1]["content"][2]["input"]


async def test_chat_completions_without_the_thinking_turn_it_off(
    wired: Wired, caplog: pytest.LogCaptureFixture
) -> None:
    call = {
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Lyon", "unit": "celsius"}'},
    }
    messages: Any = [
        {"role": "user", "content": "Lyon"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "12 C"},
    ]
    caplog.set_level(logging.DEBUG, logger="chatwire")
    async with wired.openai() as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=messages, tools=[CHAT_WEATHER], reasoning_effort="low"
        )
    assert answer.choices[0].message.content == "The tool said: 12 C"
    assert "thinking" not in wired.sent()
    assert any("thinking off" in record.getMessage() for record in caplog.records)


async def test_the_openai_family_sends_no_signed_reasoning(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    """Signed reasoning is Anthropic's: an OpenAI-compatible provider gets the assistant
    message without it (Mistral refuses any field it does not know on a message)."""
    given = {
        "role": "assistant",
        "content": "Hello",
        "reasoning_content": "Considering: Hi",
        "reasoning_signature": "c2lnbmVk",
    }
    messages: Any = [{"role": "user", "content": "Hi"}, given, {"role": "user", "content": "Again"}]
    async with FakeOpenAI() as upstream:
        server = await make_server(
            openai_base_url=upstream.base_url, openai_api_key=str(upstream.api_key)
        )
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key=server.token, max_retries=0
        ) as client:
            await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
            await client.chat.completions.create(
                model="mistral/mistral-small-latest", messages=messages
            )
        sent_openai = upstream.requests[-1].json["messages"][1]
    assert sent_openai == {"role": "assistant", "content": "Hello"}
    assert fake.requests[-1].json["messages"][1] == {"role": "assistant", "content": "Hello"}
