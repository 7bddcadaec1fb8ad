"""POST /v1/chat/completions through the official mistralai SDK, over TCP, against the fake Mistral.

The SDK is used as a Mistral customer would, changed only in its server URL (chatwire's root:
the SDK adds ``/v1/chat/completions`` itself) and its key (a chatwire bearer token).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mistralai.client import Mistral, errors, models
from mistralai.client.utils import BackoffStrategy, RetryConfig

from tests.conftest import Running
from tests.fakes.fake_mistral import FakeMistral

MODEL = "mistral/mistral-small-latest"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Say hello to the gateway"},
]
NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)


def sdk(server: Running, key: str | None = None) -> Mistral:
    return Mistral(api_key=key or server.token, server_url=server.url, retry_config=NO_RETRIES)


async def stream_events(
    server: Running, model: str = MODEL, **params: Any
) -> list[models.CompletionEvent]:
    async with sdk(server) as client:
        stream = await client.chat.stream_async(model=model, messages=MESSAGES, **params)
        async with stream:
            return [event async for event in stream]


def text_of(events: list[models.CompletionEvent]) -> str:
    parts: list[str] = []
    for event in events:
        for choice in event.data.choices:
            content = choice.delta.content
            assert content is None or isinstance(content, str)
            parts.append(content or "")
    return "".join(parts)


async def test_complete_text_usage_and_finish_reason(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        answer = await client.chat.complete_async(model=MODEL, messages=MESSAGES)
    assert answer.model == MODEL
    assert len(answer.choices) == 1
    choice = answer.choices[0]
    assert choice.message.content == fake.expected_reply(MESSAGES)
    assert choice.finish_reason == "stop"
    usage = answer.usage
    assert usage.prompt_tokens is not None
    assert usage.completion_tokens is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens == len(fake.expected_pieces(MESSAGES))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["stream"] is False
    assert sent.json["model"] == "mistral-small-latest"


async def test_stream_deltas_concatenate_to_the_reply(server: Running, fake: FakeMistral) -> None:
    events = await stream_events(server)
    assert text_of(events) == fake.expected_reply(MESSAGES)
    assert all(event.data.model == MODEL for event in events)
    assert len({event.data.id for event in events}) == 1
    finish = [c.finish_reason for e in events for c in e.data.choices if c.finish_reason]
    assert finish == ["stop"]
    assert events[-1].data.choices[0].finish_reason == "stop"
    assert fake.requests[-1].json["stream"] is True


async def test_stream_usage_on_the_last_event(server: Running, fake: FakeMistral) -> None:
    events = await stream_events(server)
    # Where Mistral itself puts it: on the last chunk, with the finish reason, and only there.
    assert [i for i, event in enumerate(events) if event.data.usage] == [len(events) - 1]
    assert events[-1].data.choices[0].finish_reason == "stop"
    usage = events[-1].data.usage
    assert usage is not None
    assert usage.prompt_tokens is not None
    assert usage.completion_tokens == len(fake.expected_pieces(MESSAGES))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_random_seed_passes_through(server: Running, fake: FakeMistral) -> None:
    async with sdk(server) as client:
        answer = await client.chat.complete_async(model=MODEL, messages=MESSAGES, random_seed=7)
    assert answer.choices[0].message.content == fake.expected_reply(MESSAGES)
    assert fake.requests[-1].json["random_seed"] == 7
    events = await stream_events(server, random_seed=11)
    assert text_of(events) == fake.expected_reply(MESSAGES)
    sent = fake.requests[-1].json
    assert sent["random_seed"] == 11
    assert "seed" not in sent


ERROR_CASES = [
    pytest.param("cw_not-a-token", MODEL, 401, "invalid_api_key", id="401-bad-token"),
    pytest.param(None, "no-such-model", 404, "model_not_found", id="404-unknown-model"),
    pytest.param(None, "mistral/fake-429", 429, "rate_limit_exceeded", id="429"),
    pytest.param(None, "mistral/fake-500", 500, None, id="500"),
]


def check_error(error: errors.SDKError, status: int, code: str | None) -> None:
    assert isinstance(error, errors.MistralError)
    assert error.status_code == status
    assert error.raw_response.headers["content-type"] == "application/json"
    body = json.loads(error.body)
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert f"Status {status}" in str(error)


@pytest.mark.parametrize(("key", "model", "status", "code"), ERROR_CASES)
async def test_errors_are_the_sdks_error_class(
    server: Running, fake: FakeMistral, key: str | None, model: str, status: int, code: str | None
) -> None:
    async with sdk(server, key) as client:
        with pytest.raises(errors.SDKError) as completing:
            await client.chat.complete_async(model=model, messages=MESSAGES)
        with pytest.raises(errors.SDKError) as streaming:
            await client.chat.stream_async(model=model, messages=MESSAGES)
    check_error(completing.value, status, code)
    check_error(streaming.value, status, code)
    # Retries are off: an upstream failure reached the fake once per call, a chatwire one never.
    assert len(fake.requests) == (2 if model.startswith("mistral/fake-") else 0)
    if status == 429:
        assert completing.value.headers["retry-after"] == "7"
        assert streaming.value.headers["retry-after"] == "7"


async def test_upstream_422_is_the_sdks_validation_error(
    server: Running, fake: FakeMistral
) -> None:
    """Mistral refuses ``n`` with a 422; it arrives as HTTPValidationError, the OpenAI-shaped
    body (no pydantic ``detail``) carrying Mistral's own message."""
    async with sdk(server) as client:
        with pytest.raises(errors.HTTPValidationError) as caught:
            await client.chat.complete_async(model=MODEL, messages=MESSAGES, n=2)
    assert caught.value.status_code == 422
    assert caught.value.data.detail is None
    body = json.loads(caught.value.body)
    assert body["error"]["type"] == "invalid_request_error"
    assert "Mistral answered 422: n: Extra inputs are not permitted" in body["error"]["message"]
    assert fake.requests[-1].json["n"] == 2


async def test_failure_mid_stream_raises_instead_of_a_clean_end(server: Running) -> None:
    """Mistral has no error event, so the SDK cannot parse chatwire's ``data: {"error": ...}``:
    it raises ResponseValidationError (a MistralError) after the text received so far."""
    received: list[str] = []

    async def read() -> None:
        async with sdk(server) as client:
            stream = await client.chat.stream_async(model="mistral/fake-drop", messages=MESSAGES)
            async with stream:
                async for event in stream:
                    received.append(text_of([event]))

    with pytest.raises(errors.ResponseValidationError) as caught:
        await read()
    assert "".join(received)  # text arrived before the failure
    assert isinstance(caught.value, errors.MistralError)
    assert caught.value.status_code == 200  # the stream had started
    assert "The connection to Mistral failed" in caught.value.body
