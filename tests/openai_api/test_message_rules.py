"""Per-provider message and parameter rules on /v1, seen from the openai SDK and the fakes.

Mistral forbids fields OpenAI clients send (a ``name`` on a user message, ``refusal: null``
on an assistant one, the ``developer`` role) and takes only 9-character tool call ids;
Groq refuses log probabilities, message names and n > 1; Perplexity takes no tools.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from chatwire.families.openai import _call_id
from chatwire.providers.builtin import MISTRAL
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_openai import FakeOpenAI
from tests.openai_api.test_tools import TOOLS

MODEL = "mistral/mistral-small-latest"
MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
OPENAI_CALL_ID = "call_Xy7bQ2fLmN4pRs8tUv1wZ0aB"


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


def round_trip(call_id: str) -> list[Any]:
    """A conversation an OpenAI client replays: its call, with its own id, and the result."""
    return [
        {"role": "user", "content": "Lyon"},
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"},
    ]


async def test_openai_call_ids_reach_mistral_as_its_own(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=round_trip(OPENAI_CALL_ID), tools=TOOLS
        )
    assert answer.choices[0].message.content == "The tool said: sunny, 21 C"
    sent = fake.requests[-1].json["messages"]
    mapped = sent[1]["tool_calls"][0]["id"]
    assert MISTRAL_ID.fullmatch(mapped)
    assert sent[2]["tool_call_id"] == mapped
    assert "refusal" not in sent[1]


async def test_the_same_openai_id_maps_the_same_way_every_time(
    server: Running, fake: FakeMistral
) -> None:
    async with sdk(server) as client:
        for _ in range(2):
            await client.chat.completions.create(
                model=MODEL, messages=round_trip(OPENAI_CALL_ID), tools=TOOLS
            )
        await client.chat.completions.create(
            model=MODEL, messages=round_trip("call_another_one"), tools=TOOLS
        )
    ids = [r.json["messages"][2]["tool_call_id"] for r in fake.requests]
    assert ids[0] == ids[1] != ids[2]


async def test_mistrals_own_ids_pass_unchanged(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        await client.chat.completions.create(
            model=MODEL, messages=round_trip("a1B2c3D4e"), tools=TOOLS
        )
    assert fake.requests[-1].json["messages"][2]["tool_call_id"] == "a1B2c3D4e"


async def test_developer_role_reaches_mistral_as_system(server: Running, fake: FakeMistral) -> None:
    messages: list[Any] = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": "Hello"},
    ]
    async with sdk(server) as client:
        answer = await client.chat.completions.create(model=MODEL, messages=messages)
    assert answer.choices[0].message.content
    assert fake.requests[-1].json["messages"][0] == {"role": "system", "content": "Answer briefly."}


async def test_a_message_field_mistral_forbids_is_a_clear_400(
    server: Running, fake: FakeMistral
) -> None:
    messages: list[Any] = [{"role": "user", "content": "Hello", "name": "alice"}]
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model=MODEL, messages=messages)
    assert "Mistral does not accept the parameter 'messages[0].name'" in str(caught.value)
    assert fake.requests == []


async def test_drop_params_drops_the_message_field(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(drop_params=True)
    messages: list[Any] = [{"role": "user", "content": "Hello", "name": "alice"}]
    async with sdk(server) as client:
        answer = await client.chat.completions.create(model=MODEL, messages=messages)
    assert answer.choices[0].message.content
    assert fake.requests[-1].json["messages"] == [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    upstream = FakeOpenAI()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"n": 2}, "n > 1"),
        ({"logprobs": True}, "logprobs"),
        ({"messages": [{"role": "user", "content": "Hi", "name": "bob"}]}, "messages[0].name"),
    ],
)
async def test_groq_refuses_what_its_api_refuses(
    make_server: ServerFactory, openai_fake: FakeOpenAI, extra: dict[str, Any], named: str
) -> None:
    server = await make_server(
        groq_base_url=openai_fake.base_url, groq_api_key=str(openai_fake.api_key)
    )
    request: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}], **extra}
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="groq/llama-3.3-70b-versatile", **request)
        assert f"Groq does not accept the parameter '{named}'" in str(caught.value)
        assert openai_fake.requests == []
        # The same request without it goes through, a name on a message included as sent.
        answer = await client.chat.completions.create(
            model="groq/llama-3.3-70b-versatile", messages=[{"role": "user", "content": "Hi"}]
        )
    assert answer.choices[0].message.content
    assert openai_fake.requests[-1].json["messages"] == [{"role": "user", "content": "Hi"}]


async def test_perplexity_takes_no_tools(
    make_server: ServerFactory, openai_fake: FakeOpenAI
) -> None:
    server = await make_server(
        perplexity_base_url=openai_fake.base_url, perplexity_api_key=str(openai_fake.api_key)
    )
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="perplexity/sonar", messages=[{"role": "user", "content": "Hi"}], tools=TOOLS
            )
    assert "Perplexity does not accept the parameter 'tools'" in str(caught.value)
    assert openai_fake.requests == []


def test_mapped_ids_are_nine_letters_or_digits_and_stable() -> None:
    pattern = MISTRAL.rules.call_id
    assert pattern is not None
    seen = {_call_id(pattern, f"call_{i}") for i in range(2000)}
    assert len(seen) == 2000
    assert all(pattern.fullmatch(mapped) for mapped in seen)
    assert _call_id(pattern, "call_7") == _call_id(pattern, "call_7")
