"""POST /v1/chat/completions through the official openai SDK, over TCP, against the fake Mistral."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Say hello to the gateway"},
]


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)


async def test_streaming_text_usage_and_finish_reason(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        stream = await client.chat.completions.create(
            model="mistral/mistral-small-latest",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == fake.expected_reply(MESSAGES)
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.model == "mistral/mistral-small-latest" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    # Mistral reports usage in its last chunk by itself: stream_options is never forwarded.
    assert "stream_options" not in fake.requests[-1].json


async def test_without_include_usage_no_usage_chunk(server: Running) -> None:
    async with sdk(server) as client:
        stream = await client.chat.completions.create(
            model="mistral-small-latest", messages=MESSAGES, stream=True
        )
        chunks = [chunk async for chunk in stream]
    # No separate usage chunk; Mistral's own usage stays on its last chunk, as Mistral sends it.
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].usage is not None
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_non_streaming_answer(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        answer = await client.chat.completions.create(
            model="mistral-small-latest", messages=MESSAGES
        )
    assert answer.object == "chat.completion"
    assert answer.model == "mistral/mistral-small-latest"
    assert answer.choices[0].message.content == fake.expected_reply(MESSAGES)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


async def test_mistral_parameters_are_translated(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        await client.chat.completions.create(
            model="mistral/mistral-small-latest",
            messages=MESSAGES,
            seed=7,
            max_completion_tokens=50,
            temperature=0.3,
            stream=True,
            stream_options={"include_usage": True},
        )
    sent = fake.requests[-1].json
    assert sent["random_seed"] == 7
    assert sent["max_tokens"] == 50
    assert sent["temperature"] == 0.3
    assert "seed" not in sent
    assert "max_completion_tokens" not in sent
    assert "stream_options" not in sent


async def test_a_parameter_mistral_refuses_is_a_clear_400(
    server: Running, fake: FakeMistral
) -> None:
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="mistral-small-latest", messages=MESSAGES, user="alice"
            )
    assert "Mistral does not accept the parameter 'user'" in str(caught.value)
    assert fake.requests == []


async def test_drop_params_drops_instead(make_server: ServerFactory, fake: FakeMistral) -> None:
    server = await make_server(drop_params=True)
    async with sdk(server) as client:
        answer = await client.chat.completions.create(
            model="mistral-small-latest", messages=MESSAGES, user="alice"
        )
    assert answer.choices[0].message.content
    assert "user" not in fake.requests[-1].json


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("mistral/fake-429", openai.RateLimitError),
        ("mistral/fake-500", openai.InternalServerError),
        ("no-such-model", openai.NotFoundError),
        ("mistral/mistral-medium-3.5", openai.BadRequestError),
    ],
)
async def test_errors_arrive_as_the_sdks_classes(
    server: Running, model: str, error: type[openai.APIStatusError]
) -> None:
    async with sdk(server) as client:
        with pytest.raises(error) as caught:
            await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"]


async def test_wrong_provider_key_is_an_authentication_error(make_server: ServerFactory) -> None:
    server = await make_server(stored_key="wrong-key-0123456789")
    async with sdk(server) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
    assert "Mistral API Key is incorrect" in str(caught.value)


async def test_failure_mid_stream_is_an_error_event_not_a_clean_end(server: Running) -> None:
    received: list[str] = []

    async def read() -> None:
        async with sdk(server) as client:
            stream = await client.chat.completions.create(
                model="mistral/fake-drop", messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as caught:
        await read()
    assert "".join(received)  # text arrived before the failure
    assert "Mistral" in str(caught.value)


async def test_raw_stream_ends_with_done_and_has_server_timing(server: Running) -> None:
    body = {"model": "mistral-small-latest", "messages": MESSAGES, "stream": True}
    async with server.client.stream(
        "POST", "/v1/chat/completions", json=body, headers=server.auth
    ) as resp:
        raw = b"".join([chunk async for chunk in resp.aiter_raw()])
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["server-timing"].startswith("gateway;dur=")
    assert "upstream;dur=" in resp.headers["server-timing"]
    assert raw.endswith(b"data: [DONE]\n\n")
    bad = await server.client.post("/v1/chat/completions", json={"model": 1}, headers=server.auth)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert bad.headers["server-timing"].startswith("gateway;dur=")


@pytest.mark.parametrize("stream", [True, False])
async def test_client_going_away_cancels_the_upstream(
    server: Running, fake: FakeMistral, stream: bool
) -> None:
    import asyncio

    body = {"model": "mistral/fake-stall", "messages": MESSAGES, "stream": stream}

    async def call() -> None:
        await server.client.post("/v1/chat/completions", json=body, headers=server.auth)

    task = asyncio.create_task(call())
    await fake.wait_for_active_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_for_active_requests(0, within=0.5)
