"""The usage each family's provider reported arrives unchanged on every chat front door, over
TCP, streamed and not: ``/v1/chat/completions`` (OpenAI's names, the canonical usage),
``/v1/responses`` (``input_tokens``, ``input_tokens_details``, ``output_tokens``,
``output_tokens_details``) and ``/v1/messages`` (Anthropic's: ``input_tokens`` without the
tokens read from or written to the cache, which are ``cache_read_input_tokens`` and
``cache_creation_input_tokens``).

Each fake reports cached and reasoning counts where its provider has them, and keeps the
usage it reported (``usages``); the numbers expected are read from there, in the provider's
words, and each door's are written out from them here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import pytest

from tests.anthropic_api._wired import events
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

USER: Any = [{"role": "user", "content": "Lyon is a city in France"}]
CACHED, WRITTEN, REASONING = 7, 5, 11


def _openai(usage: dict[str, Any]) -> dict[str, Any]:
    return usage  # already OpenAI's words, details and all


def _anthropic(usage: dict[str, Any]) -> dict[str, Any]:
    read, written = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
    prompt = usage["input_tokens"] + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage["output_tokens"],
        "total_tokens": prompt + usage["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }


def _gemini(meta: dict[str, Any]) -> dict[str, Any]:
    completion = meta["candidatesTokenCount"] + meta["thoughtsTokenCount"]
    return {
        "prompt_tokens": meta["promptTokenCount"],
        "completion_tokens": completion,
        "total_tokens": meta["totalTokenCount"],
        "prompt_tokens_details": {"cached_tokens": meta["cachedContentTokenCount"]},
        "completion_tokens_details": {"reasoning_tokens": meta["thoughtsTokenCount"]},
    }


def _ollama(counts: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = counts["prompt_eval_count"], counts["eval_count"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@dataclass
class Family:
    model: str
    fake: Any
    server: Running
    # The canonical usage (OpenAI's shape) of what the fake reported, in its own words.
    canonical: Callable[[dict[str, Any]], dict[str, Any]]

    @property
    def reported(self) -> dict[str, Any]:
        """The canonical usage of the fake's last reply."""
        return self.canonical(self.fake.usages[-1])


@pytest.fixture(params=["anthropic", "openai", "mistral", "gemini", "ollama"])
async def family(
    request: pytest.FixtureRequest, make_server: ServerFactory, fake: FakeMistral
) -> AsyncIterator[Family]:
    name = request.param
    if name == "mistral":
        yield Family("mistral/mistral-small-latest", fake, await make_server(), _openai)
        return
    upstream: Any
    if name == "anthropic":
        upstream = FakeAnthropic(cache_read_tokens=CACHED, cache_write_tokens=WRITTEN)
    elif name == "openai":
        upstream = FakeOpenAI(cached_tokens=CACHED, reasoning_tokens=REASONING)
    elif name == "gemini":
        upstream = FakeGemini(cached_tokens=CACHED, thoughts_tokens=REASONING)
    else:
        upstream = FakeOllama()
    async with upstream:
        settings, model, canonical = {
            "anthropic": (
                {"anthropic_base_url": upstream.base_url, "anthropic_api_key": upstream.api_key},
                "anthropic/claude-sonnet-4-5",
                _anthropic,
            ),
            "openai": (
                {"openai_base_url": upstream.base_url, "openai_api_key": upstream.api_key},
                "openai/gpt-4o",
                _openai,
            ),
            "gemini": (
                {"google_base_url": upstream.base_url, "google_gemini_api_key": upstream.api_key},
                "google/gemini-2.5-flash",
                _gemini,
            ),
            "ollama": ({"ollama_base_url": upstream.base_url}, "ollama/llama3.2", _ollama),
        }[name]
        yield Family(model, upstream, await make_server(stored_key=None, **settings), canonical)


def chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Chat completions' usage is the canonical one, as it stands."""
    return usage


def responses_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's names for the canonical usage."""
    out: dict[str, Any] = {"input_tokens": usage["prompt_tokens"]}
    details = usage.get("prompt_tokens_details") or {}
    cache = {k: details[k] for k in ("cached_tokens", "cache_write_tokens") if k in details}
    if cache:
        out["input_tokens_details"] = cache
    out["output_tokens"] = usage["completion_tokens"]
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        out["output_tokens_details"] = {"reasoning_tokens": reasoning}
    out["total_tokens"] = usage["total_tokens"]
    return out


def messages_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's names: the input without what was read from or written to the cache."""
    details = usage.get("prompt_tokens_details") or {}
    read, written = details.get("cached_tokens"), details.get("cache_write_tokens")
    out: dict[str, Any] = {
        "input_tokens": usage["prompt_tokens"] - (read or 0) - (written or 0),
        "output_tokens": usage["completion_tokens"],
    }
    if written is not None:
        out["cache_creation_input_tokens"] = written
    if read is not None:
        out["cache_read_input_tokens"] = read
    return out


def sse_data(resp: httpx.Response) -> list[Any]:
    """The JSON of each ``data:`` line of a stream, ``[DONE]`` left out."""
    assert resp.status_code == 200, resp.text
    lines = [line[len("data: ") :] for line in resp.text.splitlines() if line.startswith("data: ")]
    return [json.loads(data) for data in lines if data != "[DONE]"]


async def chat(family: Family, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": family.model, "messages": USER}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    server = family.server
    resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
    if not stream:
        assert resp.status_code == 200, resp.text
        usage: dict[str, Any] = resp.json()["usage"]
        return usage
    chunks = sse_data(resp)
    # The last chunk, of no choices, carries the usage; every other says null.
    assert chunks[-1]["choices"] == []
    assert [c.get("usage") for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    usage = chunks[-1]["usage"]
    return usage


async def responses(family: Family, stream: bool) -> dict[str, Any]:
    body = {"model": family.model, "input": USER[0]["content"], "stream": stream}
    server = family.server
    resp = await server.client.post("/v1/responses", json=body, headers=server.auth)
    if not stream:
        assert resp.status_code == 200, resp.text
        usage: dict[str, Any] = resp.json()["usage"]
        return usage
    found = sse_data(resp)
    assert found[-1]["type"] == "response.completed"
    assert [e["response"]["usage"] for e in found if "response" in e][:-1] == [None] * (
        len([e for e in found if "response" in e]) - 1
    )
    usage = found[-1]["response"]["usage"]
    return usage


async def messages(family: Family, stream: bool) -> dict[str, Any]:
    body = {"model": family.model, "max_tokens": 256, "messages": USER, "stream": stream}
    server = family.server
    heads = {"x-api-key": server.token, "anthropic-version": "2023-06-01"}
    resp = await server.client.post("/v1/messages", json=body, headers=heads)
    assert resp.status_code == 200, resp.text
    if not stream:
        usage: dict[str, Any] = resp.json()["usage"]
        return usage
    found = events(resp.content)
    assert [name for name, _ in found[-2:]] == ["message_delta", "message_stop"]
    # As Anthropic's clients count: message_start's usage, updated by message_delta's.
    return {**found[0][1]["message"]["usage"], **found[-2][1]["usage"]}


DOORS = {
    "chat": (chat, chat_usage),
    "responses": (responses, responses_usage),
    "messages": (messages, messages_usage),
}


async def test_the_reported_usage_arrives_unchanged_on_every_door(family: Family) -> None:
    got: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for door, (ask, named) in DOORS.items():
        for stream in (False, True):
            key = f"{door}, {'streamed' if stream else 'whole'}"
            before = len(family.fake.usages)
            got[key] = await ask(family, stream)
            assert len(family.fake.usages) == before + 1, key
            expected[key] = named(family.reported)
    assert got == expected
    # The fakes' cached and reasoning counts were among them, where the provider has them.
    canonical = family.reported
    details = canonical.get("prompt_tokens_details") or {}
    reasoning = (canonical.get("completion_tokens_details") or {}).get("reasoning_tokens")
    cache_kept = family.model.startswith(("anthropic/", "openai/", "google/"))
    assert details.get("cached_tokens") == (CACHED if cache_kept else None)
    if family.model.startswith(("openai/", "google/")):
        assert reasoning == REASONING
    if family.model.startswith("anthropic/"):
        assert details["cache_write_tokens"] == WRITTEN


async def test_the_anthropic_sdk_s_stream_gathers_the_reported_usage(family: Family) -> None:
    """The usage of the anthropic SDK's final message (``message_start``'s, updated by
    ``message_delta``'s, as Claude Code counts too) is what the provider reported;
    ``message_start`` tells the input already where the provider told it before the reply
    (Anthropic, Gemini), and zeros where it tells it only at the end."""
    server = family.server
    async with (
        anthropic.AsyncAnthropic(
            base_url=server.url, api_key=server.token, max_retries=0
        ) as client,
        client.messages.stream(model=family.model, max_tokens=256, messages=USER) as stream,
    ):
        [started] = [event.message.usage async for event in stream if event.type == "message_start"]
        final = await stream.get_final_message()
    expected = messages_usage(family.reported)
    names = (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    )
    assert {name: getattr(final.usage, name) for name in names} == {
        name: expected.get(name) for name in names
    }
    early = family.model.startswith(("anthropic/", "google/"))
    assert started.input_tokens == (expected["input_tokens"] if early else 0)
