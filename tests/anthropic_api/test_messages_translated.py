"""/v1/messages to providers that do not speak it (Mistral, OpenAI, Gemini, Ollama): translated
both ways, with the anthropic SDK over TCP.

What reached the fake (``requests``) is checked in the provider's own shape, and what the
client got in Anthropic's: its events in order, a whole ``message``, its errors' classes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from tests.anthropic_api._wired import INPUT, USER, WEATHER, Wired, events, kinds
from tests.conftest import FAKE_KEY, ServerFactory
from tests.fakes._text import split_pieces
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

MISTRAL = "mistral/mistral-small-latest"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.fixture
async def mistral(make_server: ServerFactory, fake: FakeMistral) -> Wired:
    return Wired(fake, await make_server(stored_key=FAKE_KEY))


async def stream_body(wired: Wired, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    resp = await wired.post({**body, "stream": True})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    return events(resp.content)


async def test_create_gives_one_anthropic_message(mistral: Wired) -> None:
    async with mistral.client() as client:
        message = await client.messages.create(
            model=MISTRAL, max_tokens=64, messages=USER, system="Be brief."
        )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MISTRAL
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello! You said: Lyon"
    assert message.stop_reason == "end_turn"
    sent = mistral.sent
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Lyon"},
    ]
    assert sent["max_tokens"] == 64
    # Mistral's own counts, in Anthropic's words.
    assert message.usage.input_tokens == 3
    assert message.usage.output_tokens == len(split_pieces("Hello! You said: Lyon"))


async def test_a_stream_is_anthropic_s_events_in_order(mistral: Wired) -> None:
    found = await stream_body(mistral, {"model": MISTRAL, "max_tokens": 64, "messages": USER})
    pieces = split_pieces("Hello! You said: Lyon")
    assert kinds(found) == [
        "message_start",
        "content_block_start",
        *["content_block_delta:text_delta"] * len(pieces),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = found[0][1]["message"]
    assert (start["role"], start["content"], start["model"]) == ("assistant", [], MISTRAL)
    assert found[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert "".join(data["delta"]["text"] for _, data in found[2:-3]) == "".join(pieces)
    delta = found[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 1, "output_tokens": len(pieces)}


async def test_messages_stream_text(mistral: Wired) -> None:
    async with (
        mistral.client() as client,
        client.messages.stream(model=MISTRAL, max_tokens=64, messages=USER) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello! You said: Lyon"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(split_pieces(text))


async def test_a_tool_use_round_trip(mistral: Wired) -> None:
    async with mistral.client() as client:
        async with client.messages.stream(
            model=MISTRAL, max_tokens=256, messages=USER, tools=[WEATHER]
        ) as stream:
            first = await stream.get_final_message()
        assert mistral.sent["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER["input_schema"],
                    "description": WEATHER["description"],
                },
            }
        ]
        [use] = [block for block in first.content if block.type == "tool_use"]
        assert (use.name, use.input) == ("get_weather", INPUT)
        assert first.stop_reason == "tool_use"
        turns: Any = [
            *USER,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12 C"}],
            },
        ]
        async with client.messages.stream(
            model=MISTRAL, max_tokens=256, messages=turns, tools=[WEATHER]
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
    assert text == "The tool said: 12 C"
    # The tool result went as a tool message answering the assistant's call.
    sent = mistral.sent["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == INPUT
    assert sent[2]["content"] == "12 C"


async def test_words_after_tool_results_go_with_the_last_result(mistral: Wired) -> None:
    """Anthropic's turn of results may go on with the user's words (Claude Code adds its
    reminders so); Mistral takes no user message after tool messages."""
    call_id = "toolu_01abcdefghijklmnopqrstuv"
    use = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": INPUT}
    result = {"type": "tool_result", "tool_use_id": call_id, "content": "12 C"}
    turns: Any = [
        *USER,
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, use]},
        {"role": "user", "content": [result, {"type": "text", "text": "And tomorrow?"}]},
    ]
    body = {"model": MISTRAL, "max_tokens": 64, "messages": turns, "tools": [WEATHER]}
    resp = await mistral.post(body)
    assert resp.status_code == 200, resp.text
    sent = mistral.sent["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["content"] == "Checking."
    assert sent[2]["content"] == "12 C\n\nAnd tomorrow?"
    assert resp.json()["content"][0]["text"] == "The tool said: 12 C\n\nAnd tomorrow?"


async def test_system_messages_among_the_turns(mistral: Wired) -> None:
    turns: Any = [
        {"role": "system", "content": "First."},
        *USER,
        {"role": "system", "content": [{"type": "text", "text": "Later."}]},
    ]
    resp = await mistral.post({"model": MISTRAL, "max_tokens": 64, "messages": turns})
    assert resp.status_code == 200, resp.text
    assert mistral.sent["messages"] == [
        {"role": "system", "content": "First."},
        {"role": "user", "content": "Lyon"},
        {"role": "user", "content": "Later."},
    ]


async def test_a_tool_result_last_is_answered(mistral: Wired) -> None:
    call_id = "toolu_01abcdefghijklmnopqrstuv"
    turns: Any = [
        *USER,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": call_id, "name": "get_weather", "input": INPUT}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": [{"type": "text", "text": "12 C"}],
                }
            ],
        },
    ]
    async with mistral.client() as client:
        message = await client.messages.create(
            model=MISTRAL, max_tokens=64, messages=turns, tools=[WEATHER]
        )
    assert message.content[0].type == "text"
    assert message.content[0].text == "The tool said: 12 C"


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        (
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            {
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": False,
            },
        ),
        ({"type": "none"}, {"tool_choice": "none"}),
    ],
)
async def test_tool_choice(mistral: Wired, choice: Any, sent: dict[str, Any]) -> None:
    body = {"model": MISTRAL, "max_tokens": 64, "messages": USER, "tools": [WEATHER]}
    resp = await mistral.post({**body, "tool_choice": choice})
    assert resp.status_code == 200, resp.text
    assert {key: mistral.sent.get(key) for key in sent} == sent


async def test_parameters_images_and_system_blocks(mistral: Wired) -> None:
    body = {
        "model": MISTRAL,
        "max_tokens": 3,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["\n\n"],
        "system": [{"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "someone"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.png"},
                    },
                ],
            }
        ],
    }
    resp = await mistral.post(body)
    assert resp.status_code == 200, resp.text
    sent = mistral.sent
    assert sent["messages"] == [
        {"role": "system", "content": "One."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        },
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (3, 0.5, 0.9)
    assert sent["stop"] == ["\n\n"]
    assert not sent.keys() & {"user", "metadata"}
    # Cut at max_tokens.
    assert resp.json()["stop_reason"] == "max_tokens"


async def test_thinking_is_the_provider_s_reasoning_control(mistral: Wired) -> None:
    body = {"model": MISTRAL, "max_tokens": 9000, "messages": USER}
    for budget, effort in ((1024, "low"), (8000, "medium"), (20000, "high")):
        thinking = {"type": "enabled", "budget_tokens": budget}
        resp = await mistral.post({**body, "thinking": thinking})
        assert resp.status_code == 200, resp.text
        assert mistral.sent["reasoning_effort"] == effort
    resp = await mistral.post({**body, "thinking": {"type": "disabled"}})
    assert "reasoning_effort" not in mistral.sent


async def test_messages_stream_with_thinking(mistral: Wired) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    async with (
        mistral.client() as client,
        client.messages.stream(
            model=MISTRAL, max_tokens=4096, messages=USER, thinking=thinking
        ) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert mistral.sent["reasoning_effort"] == "low"
    # Mistral said no reasoning text of its own: no thinking block, only the answer.
    assert [block.type for block in final.content] == ["text"]
    assert text == "Hello! You said: Lyon"


async def test_what_only_anthropic_takes_is_refused_or_dropped(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "A note."},
    }
    body: Any = {
        "model": MISTRAL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [document, {"type": "text", "text": "Hi"}]}],
        "extra_body": {"mcp_servers": [{"type": "url", "url": "https://example.com", "name": "x"}]},
    }
    strict = Wired(fake, await make_server(stored_key=FAKE_KEY))
    async with strict.client() as client:
        with pytest.raises(anthropic.BadRequestError) as raised:
            await client.messages.create(**body)
    assert "'mcp_servers'" in raised.value.message
    assert "CHATWIRE_DROP_PARAMS" in raised.value.message
    dropping = Wired(fake, await make_server(stored_key=FAKE_KEY, drop_params=True))
    async with dropping.client() as client:
        message = await client.messages.create(**body)
    assert message.content[0].type == "text"
    assert fake.requests[-1].json["messages"] == [{"role": "user", "content": "Hi"}]


async def test_count_tokens_is_an_estimate_said_so(mistral: Wired) -> None:
    text = "x" * 400
    async with mistral.client() as client:
        raw = await client.messages.with_raw_response.count_tokens(
            model=MISTRAL, messages=[{"role": "user", "content": text}], system="y" * 40
        )
    counted = await raw.parse()
    assert counted.input_tokens == 111  # the characters of the texts and "user", over 4
    assert raw.headers["chatwire-estimate"] == "true"
    assert mistral.fake.requests == []


async def test_an_alias_routes_a_claude_name_anywhere(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    aliases = json.dumps({"claude-sonnet-4-5": MISTRAL})
    wired = Wired(fake, await make_server(stored_key=FAKE_KEY, model_aliases=aliases))
    async with wired.client() as client:
        message = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=USER
        )
        page = await client.models.list()
    assert message.content[0].type == "text"
    assert fake.requests[-1].json["model"] == "mistral-small-latest"
    assert "claude-sonnet-4-5" in [model.id for model in page.data]
    # On the other doors too.
    resp = await wired.server.client.post(
        "/v1/chat/completions",
        json={"model": "claude-sonnet-4-5", "messages": USER},
        headers=wired.server.auth,
    )
    assert resp.status_code == 200
    assert fake.requests[-1].json["model"] == "mistral-small-latest"


@pytest.mark.parametrize(
    ("model", "error", "status", "kind"),
    [
        ("mistral/fake-429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("mistral/fake-500", anthropic.InternalServerError, 500, "api_error"),
        ("mistral/fake-503", anthropic.OverloadedError, 529, "overloaded_error"),
        ("mistral/no-such-model", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("no-such-model", anthropic.NotFoundError, 404, "not_found_error"),
    ],
)
async def test_errors_are_anthropic_s_classes(
    mistral: Wired, model: str, error: type[anthropic.APIStatusError], status: int, kind: str
) -> None:
    async with mistral.client() as client:
        with pytest.raises(error) as raised:
            await client.messages.create(model=model, max_tokens=64, messages=USER)
    assert raised.value.status_code == status
    body: Any = raised.value.body
    assert (body["type"], body["error"]["type"]) == ("error", kind)


async def test_a_bad_token_and_a_missing_key(make_server: ServerFactory, fake: FakeMistral) -> None:
    wired = Wired(fake, await make_server(stored_key=None))
    async with wired.client(token="cw_not_a_token") as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=MISTRAL, max_tokens=64, messages=USER)
    async with wired.client() as client:
        with pytest.raises(anthropic.BadRequestError, match="Mistral API Key not found"):
            await client.messages.create(model=MISTRAL, max_tokens=64, messages=USER)


async def test_a_failure_after_the_start_is_an_error_event(mistral: Wired) -> None:
    found = await stream_body(
        mistral, {"model": "mistral/fake-drop", "max_tokens": 64, "messages": USER}
    )
    assert found[0][0] == "message_start"
    assert found[-1][0] == "error"
    assert found[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [name for name, _ in found]


# OpenAI, Gemini and Ollama.


OPENAI = "openai/gpt-4o"
GEMINI = "google/gemini-2.5-flash"
OLLAMA = "ollama/llama3.2"
# What the fakes report read from the cache and spent reasoning, where the provider says so.
CACHED, REASONING = 7, 11


async def _openai(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async with FakeOpenAI(cached_tokens=CACHED, reasoning_tokens=REASONING) as upstream:
        settings = {"openai_base_url": upstream.base_url, "openai_api_key": upstream.api_key}
        yield Wired(upstream, await make_server(stored_key=None, **settings))


async def _gemini(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async with FakeGemini(cached_tokens=CACHED, thoughts_tokens=REASONING) as upstream:
        settings = {"google_base_url": upstream.base_url, "google_gemini_api_key": upstream.api_key}
        yield Wired(upstream, await make_server(stored_key=None, **settings))


async def _ollama(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async with FakeOllama() as upstream:
        yield Wired(upstream, await make_server(stored_key=None, ollama_base_url=upstream.base_url))


@pytest.fixture
async def gemini(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async for wired in _gemini(make_server):
        yield wired


@pytest.fixture
async def ollama(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async for wired in _ollama(make_server):
        yield wired


@pytest.fixture(params=[OPENAI, GEMINI, OLLAMA])
async def other(
    request: pytest.FixtureRequest, make_server: ServerFactory
) -> AsyncIterator[tuple[Wired, str]]:
    start = {OPENAI: _openai, GEMINI: _gemini, OLLAMA: _ollama}[request.param]
    async for wired in start(make_server):
        yield wired, request.param


def reported(wired: Wired, model: str) -> tuple[int, int, int | None]:
    """The input tokens not read from the cache, the output tokens (reasoning included) and
    those read from the cache, of the fake's last reply, as its provider counted them."""
    usage = wired.fake.usages[-1]
    if model == OPENAI:
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        return usage["prompt_tokens"] - cached, usage["completion_tokens"], cached
    if model == GEMINI:
        output = usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
        cached = usage["cachedContentTokenCount"]
        return usage["promptTokenCount"] - cached, output, cached
    return usage["prompt_eval_count"], usage["eval_count"], None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_text_from_openai_gemini_and_ollama(other: tuple[Wired, str], stream: bool) -> None:
    wired, model = other
    final: anthropic.types.Message
    async with wired.client() as client:
        if stream:
            async with client.messages.stream(
                model=model, max_tokens=64, messages=USER, system="Hi."
            ) as events:
                text = "".join([piece async for piece in events.text_stream])
                final = await events.get_final_message()
        else:
            final = await client.messages.create(
                model=model, max_tokens=64, messages=USER, system="Hi."
            )
            assert final.content[0].type == "text"
            text = final.content[0].text
    assert text == "Hello! You said: Lyon"
    assert [block.type for block in final.content] == ["text"]
    assert final.stop_reason == "end_turn"
    given, output, cached = reported(wired, model)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (given, output)
    assert final.usage.cache_read_input_tokens == cached
    assert final.usage.cache_creation_input_tokens is None
    if model == OPENAI:
        assert wired.sent["messages"] == [
            {"role": "system", "content": "Hi."},
            {"role": "user", "content": "Lyon"},
        ]
        assert wired.sent["stream"] is True
        assert wired.sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_tool_round_trip_with_openai_gemini_and_ollama(
    other: tuple[Wired, str], stream: bool
) -> None:
    wired, model = other
    first: anthropic.types.Message
    async with wired.client() as client:
        if stream:
            async with client.messages.stream(
                model=model, max_tokens=256, messages=USER, tools=[WEATHER]
            ) as events:
                first = await events.get_final_message()
        else:
            first = await client.messages.create(
                model=model, max_tokens=256, messages=USER, tools=[WEATHER]
            )
        [use] = [block for block in first.content if block.type == "tool_use"]
        assert use.name == "get_weather"
        assert use.input == INPUT
        assert first.stop_reason == "tool_use"
        turns: Any = [
            *USER,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12 C"}],
            },
        ]
        given, output, cached = reported(wired, model)
        assert (first.usage.input_tokens, first.usage.output_tokens) == (given, output)
        assert first.usage.cache_read_input_tokens == cached
        if stream:
            async with client.messages.stream(
                model=model, max_tokens=256, messages=turns, tools=[WEATHER]
            ) as events:
                text = "".join([piece async for piece in events.text_stream])
        else:
            second = await client.messages.create(
                model=model, max_tokens=256, messages=turns, tools=[WEATHER]
            )
            assert second.content[0].type == "text"
            text = second.content[0].text
    assert text == "The tool said: 12 C"
    if model == OPENAI:
        # Anthropic's tool turns as OpenAI's: the call on the assistant message, the result
        # a tool message answering it.
        sent = wired.sent
        assert sent["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER["input_schema"],
                    "description": WEATHER["description"],
                },
            }
        ]
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
        [call] = sent["messages"][1]["tool_calls"]
        assert call["id"] == use.id
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == INPUT
        assert sent["messages"][2]["tool_call_id"] == use.id
        assert sent["messages"][2]["content"] == "12 C"


async def test_count_tokens_from_openai_gemini_and_ollama_is_an_estimate_said_so(
    other: tuple[Wired, str],
) -> None:
    wired, model = other
    async with wired.client() as client:
        raw = await client.messages.with_raw_response.count_tokens(
            model=model, messages=[{"role": "user", "content": "x" * 400}], system="y" * 40
        )
    counted = await raw.parse()
    assert counted.input_tokens == 111  # the characters of the texts and "user", over 4
    assert raw.headers["chatwire-estimate"] == "true"
    assert wired.fake.requests == []


async def test_errors_from_openai_gemini_and_ollama_are_anthropic_s_classes(
    other: tuple[Wired, str],
) -> None:
    wired, model = other
    family = model.split("/")[0]
    async with wired.client(token="cw_not_a_token") as client:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await client.messages.create(model=model, max_tokens=64, messages=USER)
    assert refused.value.status_code == 401
    cases: list[tuple[str, type[anthropic.APIStatusError], int, str]] = [
        (f"{family}/no-such-model", anthropic.NotFoundError, 404, "not_found_error"),
    ]
    if model != OLLAMA:  # Ollama never rate limits
        cases.append((f"{family}/fake-429", anthropic.RateLimitError, 429, "rate_limit_error"))
    async with wired.client() as client:
        for name, error, status, kind in cases:
            with pytest.raises(error) as raised:
                await client.messages.create(model=name, max_tokens=64, messages=USER)
            assert raised.value.status_code == status, name
            body: Any = raised.value.body
            assert (body["type"], body["error"]["type"]) == ("error", kind)


async def test_thinking_to_openai_is_its_reasoning_effort(make_server: ServerFactory) -> None:
    async for wired in _openai(make_server):
        body = {"model": "openai/gpt-5-mini", "max_tokens": 21000, "messages": USER}
        async with wired.client() as client:
            for budget, effort in ((1024, "low"), (8000, "medium"), (20000, "high")):
                thinking: Any = {"type": "enabled", "budget_tokens": budget}
                message = await client.messages.create(**body, thinking=thinking)
                assert wired.sent["reasoning_effort"] == effort
                assert wired.sent["model"] == "gpt-5-mini"
            # OpenAI gives no reasoning text back: the answer alone, its reasoning counted.
            assert [block.type for block in message.content] == ["text"]
            assert message.usage.output_tokens == reported(wired, OPENAI)[1]
            await client.messages.create(**body, thinking={"type": "disabled"})
            assert "reasoning_effort" not in wired.sent


async def test_thinking_to_gemini_is_its_thinking_budget(gemini: Wired) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    body = {"model": "google/gemini-2.5-flash", "max_tokens": 4096, "messages": USER}
    resp = await gemini.post({**body, "thinking": thinking})
    assert resp.status_code == 200, resp.text
    config = gemini.sent["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    assert config["maxOutputTokens"] == 4096


async def test_thinking_to_ollama_is_think_and_its_thoughts_a_thinking_block(
    ollama: Wired,
) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    body: Any = {"model": OLLAMA, "max_tokens": 4096, "messages": USER, "thinking": thinking}
    found = await stream_body(ollama, body)
    assert ollama.sent["think"] is True
    thought = split_pieces("Considering: Lyon")
    reply = split_pieces("Hello! You said: Lyon")
    assert kinds(found) == [
        "message_start",
        "content_block_start",
        *["content_block_delta:thinking_delta"] * len(thought),
        "content_block_stop",
        "content_block_start",
        *["content_block_delta:text_delta"] * len(reply),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert found[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert found[len(thought) + 3][1]["index"] == 1
    async with ollama.client() as client:
        message = await client.messages.create(**body)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking"
    assert message.content[0].thinking == "Considering: Lyon"
    assert message.usage.output_tokens == len(thought) + len(reply)


MALFORMED: list[dict[str, Any]] = [
    {"model": MISTRAL, "max_tokens": 8},
    {"model": MISTRAL, "max_tokens": 8, "messages": "hi"},
    {"model": MISTRAL, "max_tokens": 8, "messages": []},
    {"model": MISTRAL, "max_tokens": 8, "messages": [7]},
    {"model": MISTRAL, "max_tokens": 8, "messages": [{"role": "system", "content": 3}]},
    {"model": MISTRAL, "max_tokens": 8, "messages": [{"role": "user", "content": 5}]},
    {"model": MISTRAL, "max_tokens": 8, "messages": [{"role": "user", "content": [5]}]},
    {"model": MISTRAL, "max_tokens": "8", "messages": USER},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "system": 3},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "system": [{"type": "image"}]},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "tools": {}},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "tools": [{"name": "x"}]},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "tool_choice": {"type": "any"}},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "tool_choice": "auto"},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "thinking": {"type": "on"}},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "stop_sequences": "x"},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "output_config": {"effort": 1}},
    {"model": MISTRAL, "max_tokens": 8, "messages": USER, "stream": "yes"},
    {"model": 5, "max_tokens": 8, "messages": USER},
    {
        "model": MISTRAL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}],
    },
    {
        "model": MISTRAL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": 1}]}],
    },
    {
        "model": MISTRAL,
        "max_tokens": 8,
        "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "x"}]}],
    },
]


async def test_a_malformed_body_is_a_400_in_anthropic_s_shape(mistral: Wired) -> None:
    for body in MALFORMED:
        resp = await mistral.post(body)
        assert resp.status_code == 400, (body, resp.text)
        error = resp.json()
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["message"]
    assert mistral.fake.requests == []


async def test_a_body_too_large_is_request_too_large(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    wired = Wired(fake, await make_server(stored_key=FAKE_KEY, max_body_bytes=2048))
    words: Any = [{"role": "user", "content": "x" * 4096}]
    async with wired.client() as client:
        with pytest.raises(anthropic.APIStatusError) as raised:
            await client.messages.create(model=MISTRAL, max_tokens=8, messages=words)
    assert raised.value.status_code == 413
    body: Any = raised.value.body
    assert (body["type"], body["error"]["type"]) == ("error", "request_too_large")
    assert fake.requests == []
