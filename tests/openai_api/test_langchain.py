"""POST /v1/chat/completions through LangChain's ChatOpenAI, over TCP, against the fake Mistral.

ChatOpenAI is used as for OpenAI itself, changed only in its base URL (chatwire's ``/v1``) and
its key (a chatwire bearer token).
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from tests.conftest import Running
from tests.fakes.fake_mistral import SLOW_TOKEN_DELAY, FakeMistral

MODEL = "mistral/mistral-small-latest"
SYSTEM = "You are helpful."
QUESTION = "Say hello to the gateway"
LC_MESSAGES = [SystemMessage(SYSTEM), HumanMessage(QUESTION)]
WIRE_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
]


def chat(server: Running, model: str = MODEL, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key=options.pop("api_key", server.token),
        model=model,
        max_retries=0,
        **options,
    )


async def collect(llm: ChatOpenAI, arrivals: list[float] | None = None) -> list[AIMessageChunk]:
    chunks: list[AIMessageChunk] = []
    async for chunk in llm.astream(LC_MESSAGES):
        assert isinstance(chunk, AIMessageChunk)
        chunks.append(chunk)
        if arrivals is not None and chunk.text:
            arrivals.append(time.monotonic())
    return chunks


async def test_ainvoke_text_and_usage(server: Running, fake: FakeMistral) -> None:
    answer = await chat(server).ainvoke(LC_MESSAGES)
    assert isinstance(answer, AIMessage)
    assert answer.content == fake.expected_reply(WIRE_MESSAGES)
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.response_metadata["model_name"] == MODEL
    usage = answer.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] == len(fake.expected_pieces(WIRE_MESSAGES))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    sent = fake.requests[-1].json
    assert sent["model"] == "mistral-small-latest"
    assert sent["messages"] == WIRE_MESSAGES
    assert sent["stream"] is False


async def test_astream_arrives_in_pieces(server: Running, fake: FakeMistral) -> None:
    arrivals: list[float] = []
    chunks = await collect(chat(server, "mistral/fake-slow"), arrivals)
    texts = [chunk.text for chunk in chunks if chunk.text]
    assert len(texts) > 1
    # Relayed as they come, not buffered: the fake waits SLOW_TOKEN_DELAY between pieces.
    assert arrivals[-1] - arrivals[0] >= 0.5 * SLOW_TOKEN_DELAY * (len(texts) - 1)
    assert "".join(texts) == fake.expected_reply(WIRE_MESSAGES, model="fake-slow")
    assert texts == fake.expected_pieces(WIRE_MESSAGES, model="fake-slow")
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.content == fake.expected_reply(WIRE_MESSAGES, model="fake-slow")
    assert merged.response_metadata["finish_reason"] == "stop"
    assert "stream_options" not in fake.requests[-1].json


async def test_stream_usage_on_the_final_chunk(server: Running, fake: FakeMistral) -> None:
    chunks = await collect(chat(server, stream_usage=True))
    text = "".join(chunk.text for chunk in chunks)
    assert text == fake.expected_reply(WIRE_MESSAGES)
    with_usage = [i for i, chunk in enumerate(chunks) if chunk.usage_metadata is not None]
    assert len(with_usage) == 1
    final = with_usage[0]
    # The usage chunk is the last one chatwire sent: after every piece of text; LangChain only
    # adds its own empty closing chunk (chunk_position="last") after it.
    assert final > max(i for i, chunk in enumerate(chunks) if chunk.text)
    assert all(not chunk.content for chunk in chunks[final:])
    assert chunks[-1].chunk_position == "last"
    usage = chunks[final].usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] == len(fake.expected_pieces(WIRE_MESSAGES))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # chatwire answers include_usage itself; Mistral reports usage unasked.
    assert "stream_options" not in fake.requests[-1].json


async def test_bad_token_is_openais_authentication_error(
    server: Running, fake: FakeMistral
) -> None:
    llm = chat(server, api_key="cw_not-a-token")
    with pytest.raises(openai.AuthenticationError) as invoking:
        await llm.ainvoke(LC_MESSAGES)
    with pytest.raises(openai.AuthenticationError) as streaming:
        await collect(llm)
    for caught in (invoking, streaming):
        assert caught.value.status_code == 401
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["code"] == "invalid_api_key"
        assert body["type"] == "invalid_request_error"
    assert fake.requests == []
