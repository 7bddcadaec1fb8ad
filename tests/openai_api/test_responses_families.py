"""POST /v1/responses to OpenAI (through its chat completions), Anthropic, Gemini and Ollama
with the openai SDK, over TCP: text, a tool call and its result, streamed and not, a
conversation continued by ``previous_response_id``, structured output and reasoning effort as
each provider's own controls. The fakes call the request's tool with arguments derived from its schema and answer
a tool result with ``"The tool said: <output>"``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pydantic
import pytest
from openai.types.responses import Response

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

WEATHER: Any = {
    "type": "function",
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
}
ARGUMENTS = {"city": "Lyon", "unit": "celsius"}


@dataclass
class Family:
    name: str
    model: str
    fake: Any
    server: Running
    # The text the fake answers a request with, from its last request's body.
    reply: Callable[[dict[str, Any]], str]

    def counts(self, usage: dict[str, Any]) -> tuple[int, int, int]:
        return _counts(self.name, usage)

    def openai(self) -> openai.AsyncOpenAI:
        url = f"{self.server.url}/v1"
        return openai.AsyncOpenAI(base_url=url, api_key=self.server.token, max_retries=0)

    @property
    def sent(self) -> dict[str, Any]:
        body: dict[str, Any] = self.fake.requests[-1].json
        return body


@pytest.fixture(params=["openai", "anthropic", "gemini", "ollama"])
async def family(
    request: pytest.FixtureRequest, make_server: ServerFactory
) -> AsyncIterator[Family]:
    if request.param == "openai":
        async with FakeOpenAI() as upstream:
            settings = {"openai_base_url": upstream.base_url, "openai_api_key": upstream.api_key}
            server = await make_server(stored_key=None, **settings)
            yield Family(
                "openai",
                "openai/gpt-5-mini",
                upstream,
                server,
                lambda sent: upstream.expected_reply(sent["messages"]),
            )
    elif request.param == "anthropic":
        anthropic = FakeAnthropic()
        base = await anthropic.start()
        settings = {"anthropic_base_url": base, "anthropic_api_key": anthropic.api_key}
        server = await make_server(stored_key=None, **settings)
        yield Family(
            "anthropic",
            "anthropic/claude-sonnet-4-5",
            anthropic,
            server,
            lambda sent: anthropic.expected_reply(sent["messages"]),
        )
        await anthropic.stop()
    elif request.param == "gemini":
        async with FakeGemini() as gemini:
            settings = {"google_base_url": gemini.base_url, "google_gemini_api_key": gemini.api_key}
            server = await make_server(stored_key=None, **settings)
            yield Family(
                "gemini",
                "google/gemini-2.5-flash",
                gemini,
                server,
                lambda sent: gemini.expected_reply(sent["contents"]),
            )
    else:
        async with FakeOllama() as ollama:
            server = await make_server(stored_key=None, ollama_base_url=ollama.base_url)
            yield Family(
                "ollama",
                "ollama/llama3.2",
                ollama,
                server,
                lambda sent: ollama.expected_reply(sent["messages"]),
            )


async def test_text(family: Family) -> None:
    async with family.openai() as client:
        response = await client.responses.create(
            model=family.model, input="Say hello", instructions="Be brief."
        )
        stream = await client.responses.create(model=family.model, input="Say hello", stream=True)
        events = [event async for event in stream]
    assert response.status == "completed"
    assert response.model == family.model
    assert response.output_text == family.reply(family.sent)
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == response.output_text
    assert events[-1].type == "response.completed"
    # Each reply's usage as its provider reported it, under the Responses API's names.
    for usage, reported in zip(
        (response.usage, events[-1].response.usage), family.fake.usages, strict=True
    ):
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == family.counts(
            reported
        )


def _counts(family: str, usage: dict[str, Any]) -> tuple[int, int, int]:
    """The input, output and total tokens a fake reported, in its provider's words."""
    if family == "openai":
        return usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]
    if family == "anthropic":
        read, written = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
        given = usage["input_tokens"] + read + written
        return given, usage["output_tokens"], given + usage["output_tokens"]
    if family == "gemini":
        output = usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
        return usage["promptTokenCount"], output, usage["totalTokenCount"]
    given, output = usage["prompt_eval_count"], usage["eval_count"]
    return given, output, given + output


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_tool_call_and_its_result(family: Family, stream: bool) -> None:
    first: Response
    async with family.openai() as client:
        if stream:
            async with client.responses.stream(
                model=family.model, input="Lyon", tools=[WEATHER]
            ) as events:
                first = await events.get_final_response()
        else:
            first = await client.responses.create(model=family.model, input="Lyon", tools=[WEATHER])
        calls = [item for item in first.output if item.type == "function_call"]
        [call] = calls
        assert (call.name, json.loads(call.arguments)) == ("get_weather", ARGUMENTS)
        assert family.fake.expected_tool_call(family.sent) == ("get_weather", ARGUMENTS)
        second = await client.responses.create(
            model=family.model,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "12 C"}],
            previous_response_id=first.id,
            tools=[WEATHER],
        )
    assert second.output_text == "The tool said: 12 C"


async def test_reasoning_effort_as_the_providers_control(family: Family) -> None:
    async with family.openai() as client:
        await client.responses.create(
            model=family.model, input="Hi", reasoning={"effort": "medium"}, max_output_tokens=9000
        )
    if family.name == "openai":
        assert family.sent["reasoning_effort"] == "medium"
        assert family.sent["max_completion_tokens"] == 9000
    elif family.name == "ollama":
        assert family.sent["think"] is True  # Ollama's thinking is on or off
    elif family.name == "anthropic":
        assert family.sent["thinking"] == {"type": "enabled", "budget_tokens": 8192}
        assert family.sent["max_tokens"] == 9000
    else:
        assert family.sent["generationConfig"]["thinkingConfig"] == {
            "thinkingBudget": 8192,
            "includeThoughts": True,
        }


def turns(family: Family) -> list[tuple[str, str]]:
    """Each turn the fake received last, as its role and its text, in its provider's words."""
    if family.name == "gemini":
        return [
            (turn["role"], "".join(part["text"] for part in turn["parts"]))
            for turn in family.sent["contents"]
        ]
    found = []
    for turn in family.sent["messages"]:
        content = turn["content"]
        if isinstance(content, list):
            content = "".join(block["text"] for block in content)
        found.append((turn["role"], content))
    return found


async def test_previous_response_id_continues_the_conversation(family: Family) -> None:
    async with family.openai() as client:
        first = await client.responses.create(model=family.model, input="My name is Ada")
        second = await client.responses.create(
            model=family.model, input="What is my name?", previous_response_id=first.id
        )
    assistant = "model" if family.name == "gemini" else "assistant"
    assert turns(family) == [
        ("user", "My name is Ada"),
        (assistant, first.output_text),
        ("user", "What is my name?"),
    ]
    assert second.previous_response_id == first.id
    assert second.output_text == family.reply(family.sent)


class Place(pydantic.BaseModel):
    city: str


async def test_structured_output_as_the_providers_own(family: Family) -> None:
    """OpenAI's response_format, Anthropic's output_config.format, Gemini's response JSON
    schema, Ollama's format."""
    family.fake.reply = '{"city": "Lyon"}'
    async with family.openai() as client:
        parsed = await client.responses.parse(model=family.model, input="Where?", text_format=Place)
    assert parsed.output_parsed == Place(city="Lyon")
    properties = Place.model_json_schema()["properties"]
    sent = family.sent
    if family.name == "openai":
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["name"] == "Place"
        assert sent["response_format"]["json_schema"]["strict"] is True
        assert sent["response_format"]["json_schema"]["schema"]["properties"] == properties
    elif family.name == "gemini":
        config = sent["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"]["properties"] == properties
    elif family.name == "anthropic":
        assert sent["output_config"]["format"]["type"] == "json_schema"
        assert sent["output_config"]["format"]["schema"]["properties"] == properties
    else:
        assert sent["format"]["properties"] == properties
