"""/v1/chat/completions to Google Gemini with the mistralai SDK and LangChain's ChatOpenAI.

Each client is used as for its own provider, changed only in its URL (the mistralai SDK takes
chatwire's root, ChatOpenAI its ``/v1``) and its key (a chatwire bearer token).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from mistralai.client import errors

from tests.conftest import ServerFactory
from tests.fakes._faults import SLOW_TOKEN_DELAY
from tests.fakes.fake_gemini import FakeGemini
from tests.openai_api._gemini import (
    ARGUMENTS,
    CALL_ID,
    GEMINI_3,
    MESSAGES,
    MODEL,
    TOOLS,
    Wired,
    start,
)


@pytest.fixture
async def wired(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async with FakeGemini() as fake:
        yield await start(make_server, fake)


# The mistralai SDK, pointed at chatwire's root.


async def test_mistralai_complete(wired: Wired) -> None:
    async with wired.mistral() as client:
        answer = await client.chat.complete_async(model=MODEL, messages=MESSAGES, random_seed=5)
    choice = answer.choices[0]
    assert choice.message.content == wired.fake.expected_reply(wired.sent["contents"])
    assert choice.finish_reason == "stop"
    assert answer.model == MODEL
    assert answer.usage.completion_tokens == len(wired.fake.expected_pieces(wired.sent["contents"]))
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert wired.sent["generationConfig"]["seed"] == 5


async def test_mistralai_stream(wired: Wired) -> None:
    async with wired.mistral() as client:
        stream = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
        async with stream:
            events = [event async for event in stream]
    text = "".join(str(c.delta.content or "") for e in events for c in e.data.choices)
    assert text == wired.fake.expected_reply(wired.sent["contents"])
    finishes = [c.finish_reason for e in events for c in e.data.choices if c.finish_reason]
    assert finishes == ["stop"]
    usage = events[-1].data.usage  # where Mistral puts it, and the SDK reads it
    assert usage is not None
    assert usage.completion_tokens == len(wired.fake.expected_pieces(wired.sent["contents"]))
    assert [i for i, e in enumerate(events) if e.data.usage] == [len(events) - 1]


async def test_mistralai_tool_call(wired: Wired) -> None:
    async with wired.mistral() as client:
        answer = await client.chat.complete_async(
            model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="any"
        )
    [call] = answer.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(str(call.function.arguments)) == ARGUMENTS
    assert answer.choices[0].finish_reason == "tool_calls"
    # Mistral's "any" is OpenAI's "required".
    assert wired.sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize("whose", ["chatwire-token", "gemini-key"])
async def test_mistralai_auth_errors_are_its_error_class(
    make_server: ServerFactory, whose: str
) -> None:
    async with FakeGemini() as fake:
        key = "wrong" if whose == "gemini-key" else fake.api_key
        wired = await start(make_server, fake, google_gemini_api_key=key)
        token = "cw_not-a-token" if whose == "chatwire-token" else None
        async with wired.mistral(token) as client:
            with pytest.raises(errors.SDKError) as caught:
                await client.chat.complete_async(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 401
    error = json.loads(caught.value.body)["error"]
    if whose == "gemini-key":
        assert error["message"].startswith("Google Gemini API Key is incorrect")
        assert len(fake.requests) == 1
    else:
        assert error["code"] == "invalid_api_key"
        assert fake.requests == []


# LangChain's ChatOpenAI, pointed at chatwire's /v1.


async def test_langchain_invoke(wired: Wired) -> None:
    answer = await wired.langchain().ainvoke([HumanMessage("Say hello")])
    assert isinstance(answer, AIMessage)
    assert answer.content == "Hello! You said: Say hello"
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.usage_metadata is not None
    pieces = wired.fake.expected_pieces(wired.sent["contents"])
    assert answer.usage_metadata["output_tokens"] == len(pieces)


async def test_langchain_streams_incrementally(wired: Wired) -> None:
    llm = wired.langchain("google/fake-slow")
    pieces: list[str] = []
    arrivals: list[float] = []
    async for chunk in llm.astream([HumanMessage("Say hello")]):
        if chunk.text:
            pieces.append(chunk.text)
            arrivals.append(time.monotonic())
    assert pieces == wired.fake.expected_pieces(wired.sent["contents"], model="fake-slow")
    # Relayed as they come: the fake waits SLOW_TOKEN_DELAY between pieces.
    assert arrivals[-1] - arrivals[0] >= 0.5 * SLOW_TOKEN_DELAY * (len(pieces) - 1)


@tool
def get_weather(city: str, unit: str) -> str:
    """The current weather in a city."""
    return f"12 {unit} in {city}"


@pytest.mark.parametrize("model", [MODEL, GEMINI_3])
async def test_langchain_bind_tools_round_trip(wired: Wired, model: str) -> None:
    """LangChain keeps only a call's id, name and arguments: the signature Gemini 3 wants
    back travels in the id."""
    llm = wired.langchain(model).bind_tools([get_weather])
    question = HumanMessage("Lyon")
    called = await llm.ainvoke([question])
    assert isinstance(called, AIMessage)
    [call] = called.tool_calls
    assert (call["name"], call["args"]["city"]) == ("get_weather", "Lyon")
    assert call["id"] is not None
    assert CALL_ID.fullmatch(call["id"])
    result = ToolMessage(content="12°C and sunny", tool_call_id=call["id"])
    answer = await llm.ainvoke([question, called, result])
    assert answer.content == "The tool said: 12°C and sunny"
    [signature] = wired.fake.signatures
    assert wired.sent["contents"][1]["parts"][0]["thoughtSignature"] == signature
