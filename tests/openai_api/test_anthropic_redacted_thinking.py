"""Anthropic's redacted thinking (``redacted_thinking`` blocks: opaque ``data``) through a tool
loop, over TCP with the openai and anthropic SDKs.

The fake Anthropic redacts its thinking when the user's words hold the string Anthropic
documents for it (``REDACTED_TRIGGER``), and refuses a block given back whose data it did not
make. Translated, the data goes out as a Responses reasoning item of its own (its
``encrypted_content`` marked as redacted) or as ``reasoning_redacted`` on
/v1/chat/completions, and comes back the same way into the turn's ``redacted_thinking``
block; passed through (/v1/messages to Anthropic), the block arrives and goes back as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
import pytest_asyncio
from openai.types.responses import Response

from tests.anthropic_api._wired import events, kinds
from tests.conftest import FAKE_KEY, Running, Servers
from tests.fakes._anthropic_thinking import REDACTED_TRIGGER
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_mistral import FakeMistral

pytestmark = pytest.mark.asyncio(loop_scope="module")
MODEL = "anthropic/claude-sonnet-4-5"
ASKED = f"Lyon {REDACTED_TRIGGER}"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CHAT_WEATHER: Any = {
    "type": "function",
    "function": {key: value for key, value in WEATHER.items() if key != "type"},
}
MESSAGES_WEATHER: Any = {"name": "get_weather", "input_schema": WEATHER["parameters"]}
PREFIX = "redacted_thinking:"


@dataclass
class Wired:
    fake: FakeAnthropic
    server: Running

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.server.url}/v1", api_key=self.server.token, max_retries=0
        )

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url=self.server.url, api_key=self.server.token, max_retries=0
        )

    def sent(self, number: int = -1) -> dict[str, Any]:
        body: dict[str, Any] = self.fake.requests[number].json
        return body

    def redacted_block(self, number: int = -1) -> dict[str, Any]:
        """The redacted_thinking block the fake made for its ``number``th request."""
        thinking = self.fake.thinking_of(self.sent(number))
        assert thinking is not None
        assert thinking.redacted is not None
        return thinking.block()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wired(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Wired]:
    async with FakeAnthropic() as fake, FakeMistral(api_key=FAKE_KEY) as mistral:
        servers = Servers(tmp_path_factory.mktemp("redacted"), mistral)
        try:
            server = await servers.start(
                stored_key=None, anthropic_base_url=fake.base_url, anthropic_api_key=fake.api_key
            )
            yield Wired(fake, server)
        finally:
            await servers.close()


def result(call_id: str) -> Any:
    return {"type": "function_call_output", "call_id": call_id, "output": "12 C"}


def assert_given_back(wired: Wired, block: dict[str, Any]) -> None:
    """The last request gave the fake's block back first in the tool-calling turn (the fake
    checked its data), with thinking on."""
    sent = wired.sent()
    assert sent["thinking"]["type"] == "enabled"
    turn = sent["messages"][1]
    assert turn["role"] == "assistant"
    assert turn["content"][0] == block
    assert [b["type"] for b in turn["content"]] == ["redacted_thinking", "text", "tool_use"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_responses_by_previous_response_id(wired: Wired, stream: bool) -> None:
    first: Response
    asked: Any = {"model": MODEL, "tools": [WEATHER], "reasoning": {"effort": "low"}}
    async with wired.openai() as client:
        if stream:
            async with client.responses.stream(input=ASKED, **asked) as found:
                first = await found.get_final_response()
        else:
            first = await client.responses.create(input=ASKED, **asked)
        block = wired.redacted_block()
        reasoning, _, call = first.output
        assert reasoning.type == "reasoning"
        assert reasoning.summary == []
        assert reasoning.encrypted_content == PREFIX + block["data"]
        assert call.type == "function_call"
        second = await client.responses.create(
            input=[result(call.call_id)], previous_response_id=first.id, **asked
        )
    assert second.output_text == "The tool said: 12 C"
    assert_given_back(wired, block)


async def test_responses_by_the_items_given_back(wired: Wired) -> None:
    asked: Any = {
        "model": MODEL,
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }
    async with wired.openai() as client:
        first = await client.responses.create(input=ASKED, **asked)
        block = wired.redacted_block()
        given = [item.model_dump(exclude_none=True) for item in first.output]
        [call] = [item for item in first.output if item.type == "function_call"]
        history: list[Any] = [{"role": "user", "content": ASKED}, *given, result(call.call_id)]
        second = await client.responses.create(input=history, **asked)
    assert second.output_text == "The tool said: 12 C"
    assert_given_back(wired, block)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_chat_completions_round_trip(wired: Wired, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": ASKED}]
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
            redacted = [e["reasoning_redacted"] for e in extra if "reasoning_redacted" in e]
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
            redacted = fields["reasoning_redacted"]
            assert "reasoning_signature" not in fields
            content = message.content or ""
            assert message.tool_calls is not None
            call = message.tool_calls[0].model_dump()
        block = wired.redacted_block()
        assert redacted == [block["data"]]
        given: Any = {
            "role": "assistant",
            "content": content,
            "tool_calls": [call],
            "reasoning_redacted": redacted,
        }
        tool: Any = {"role": "tool", "tool_call_id": call["id"], "content": "12 C"}
        second = await client.chat.completions.create(messages=[*messages, given, tool], **asked)
    assert second.choices[0].message.content == "The tool said: 12 C"
    assert_given_back(wired, block)


async def test_altered_data_is_refused_by_anthropic(wired: Wired) -> None:
    """What the fake checks, as Anthropic does: data it did not make is a 400."""
    given: Any = {
        "role": "assistant",
        "content": "I'll use get_weather.",
        "tool_calls": [
            {
                "id": "toolu_01",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
            }
        ],
        "reasoning_redacted": ["bm90IHRoZSBmYWtlJ3M="],
    }
    tool: Any = {"role": "tool", "tool_call_id": "toolu_01", "content": "12 C"}
    async with wired.openai() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": ASKED}, given, tool],
                tools=[CHAT_WEATHER],
                reasoning_effort="low",
            )
    assert "Invalid `data` in `redacted_thinking` block" in str(refused.value)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_passed_through_as_it_is(wired: Wired, stream: bool) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    asked: Any = {
        "model": MODEL,
        "max_tokens": 2048,
        "thinking": thinking,
        "tools": [MESSAGES_WEATHER],
    }
    user: Any = {"role": "user", "content": ASKED}
    async with wired.anthropic() as client:
        if stream:
            async with client.messages.stream(messages=[user], **asked) as found:
                first = await found.get_final_message()
            assert kinds(events(wired.fake.replies[-1]))[1:3] == [
                "content_block_start",
                "content_block_stop",
            ]
        else:
            raw = await client.messages.with_raw_response.create(messages=[user], **asked)
            assert await raw.http_response.aread() == wired.fake.replies[-1]
            first = await raw.parse()
        block = wired.redacted_block()
        assert first.content[0].model_dump() == block
        [use] = [b for b in first.content if b.type == "tool_use"]
        back: Any = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12 C"}],
        }
        turn: Any = {"role": "assistant", "content": [b.model_dump() for b in first.content]}
        second = await client.messages.create(messages=[user, turn, back], **asked)
    assert second.content[-1].type == "text"
    assert second.content[-1].text == "The tool said: 12 C"
    assert_given_back(wired, block)
