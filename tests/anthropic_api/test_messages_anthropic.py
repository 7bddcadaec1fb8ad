"""/v1/messages to Anthropic: passed through, with the anthropic SDK over TCP.

chatwire sends the client's body as it came (its model the provider's id) with the client's
``anthropic-version``, ``anthropic-beta`` and query string, and relays the fake's bytes
unchanged; the fake records what it received and what it sent (``requests``, ``replies``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from tests.anthropic_api._wired import INPUT, USER, WEATHER, Wired, events, kinds
from tests.conftest import ServerFactory
from tests.fakes import _anthropic_wire as wire
from tests.fakes.fake_anthropic import FakeAnthropic

MODEL = "anthropic/claude-sonnet-4-5"
UPSTREAM = "claude-sonnet-4-5"
BETA = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"


async def wire_up(make_server: ServerFactory, **settings: Any) -> AsyncIterator[Wired]:
    async with FakeAnthropic(cache_read_tokens=3, cache_write_tokens=5) as fake:
        overrides = {"anthropic_base_url": fake.base_url, "anthropic_api_key": fake.api_key}
        yield Wired(fake, await make_server(stored_key=None, **{**overrides, **settings}))


@pytest.fixture
async def wired(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async for pair in wire_up(make_server):
        yield pair


async def test_a_stream_is_relayed_byte_for_byte_with_the_headers_forwarded(wired: Wired) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": USER, "stream": True}
    heads = {"x-api-key": wired.server.token, "anthropic-version": "2023-01-01"}
    headers = {**heads, "anthropic-beta": BETA}
    async with wired.server.client.stream(
        "POST", "/v1/messages?beta=true", json=body, headers=headers
    ) as resp:
        received = b"".join([part async for part in resp.aiter_raw()])
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert received == wired.fake.replies[-1]
    asked = wired.fake.requests[-1]
    assert asked.headers["anthropic-version"] == "2023-01-01"
    assert asked.headers["anthropic-beta"] == BETA
    assert asked.query == {"beta": "true"}
    assert asked.json == {**body, "model": UPSTREAM}
    assert "authorization" not in asked.headers
    assert asked.headers["x-api-key"] == wired.fake.api_key


async def test_a_body_naming_the_upstream_model_goes_as_its_bytes_came(wired: Wired) -> None:
    raw = b'{"model":  "claude-sonnet-4-5", "max_tokens": 8,\n "messages": [{"role": "user", "content": "Hi"}]}'
    heads = {"x-api-key": wired.server.token, "anthropic-version": "2023-06-01"}
    resp = await wired.server.client.post("/v1/messages", content=raw, headers=heads)
    assert resp.status_code == 200
    assert wired.fake.requests[-1].raw == raw
    assert resp.content == wired.fake.replies[-1]


async def test_messages_create(wired: Wired) -> None:
    async with wired.client() as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert message.content[0].type == "text"
    assert message.content[0].text == wired.fake.expected_reply(USER)
    assert message.model == UPSTREAM  # Anthropic's own answer, unchanged
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == wire.input_tokens(wired.sent)
    assert message.usage.cache_read_input_tokens == 3
    assert message.usage.cache_creation_input_tokens == 5


async def test_an_auth_token_works_as_well_as_an_api_key(wired: Wired) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=wired.server.url, auth_token=wired.server.token, max_retries=0
    )
    async with client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert message.content[0].type == "text"
    assert "x-api-key" not in {k.lower() for k in client.default_headers}


async def test_messages_stream_text(wired: Wired) -> None:
    async with (
        wired.client() as client,
        client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == wired.fake.expected_reply(USER)
    assert final.usage.output_tokens == len(wired.fake.expected_pieces(USER))
    assert final.usage.cache_read_input_tokens == 3


async def test_a_tool_use_round_trip(wired: Wired) -> None:
    async with wired.client() as client:
        async with client.messages.stream(
            model=MODEL, max_tokens=256, messages=USER, tools=[WEATHER]
        ) as stream:
            first = await stream.get_final_message()
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
            model=MODEL, max_tokens=256, messages=turns, tools=[WEATHER]
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
    assert text == "The tool said: 12 C"


async def test_thinking_blocks_and_their_signatures_arrive_as_sent(wired: Wired) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    async with wired.client() as client:
        async with client.messages.stream(
            model=MODEL, max_tokens=2048, messages=USER, thinking=thinking
        ) as stream:
            final = await stream.get_final_message()
        whole = await client.messages.create(
            model=MODEL, max_tokens=2048, messages=USER, thinking=thinking
        )
    expected = wired.fake.thinking_of(wired.sent)
    for message in (final, whole):
        block = message.content[0]
        assert block.type == "thinking"
        assert (block.thinking, block.signature) == (expected.text, expected.signature)
        assert message.content[1].type == "text"
    found = kinds(events(wired.fake.replies[-2]))
    assert found[:3] == [
        "message_start",
        "content_block_start",
        "content_block_delta:thinking_delta",
    ]
    assert "content_block_delta:signature_delta" in found


async def test_count_tokens_is_anthropic_s_own(wired: Wired) -> None:
    async with wired.client() as client:
        raw = await client.messages.with_raw_response.count_tokens(
            model=MODEL, messages=USER, system="Be brief."
        )
    counted = await raw.parse()
    assert counted.input_tokens == wire.input_tokens(wired.sent)
    assert wired.fake.requests[-1].path == "/v1/messages/count_tokens"
    assert wired.sent["model"] == UPSTREAM
    assert "chatwire-estimate" not in raw.headers


async def test_models_in_anthropic_s_shape(wired: Wired) -> None:
    async with wired.client() as client:
        page = await client.models.list()
    ids = [model.id for model in page.data]
    assert MODEL in ids
    assert all(model.type == "model" for model in page.data)
    resp = await wired.server.client.get("/v1/models", headers=wired.server.auth)
    assert resp.json()["object"] == "list"  # OpenAI's shape without anthropic-version
    async with wired.client() as client:
        model = await client.models.retrieve(MODEL)
    assert (model.type, model.id) == ("model", MODEL)
    async with wired.client(token="not-a-token") as client:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            await client.models.list()
    body: Any = raised.value.body
    assert (body["type"], body["error"]["type"]) == ("error", "authentication_error")


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("anthropic/fake-429", anthropic.RateLimitError, 429),
        ("anthropic/fake-500", anthropic.InternalServerError, 500),
        ("anthropic/fake-503", anthropic.OverloadedError, 529),
        ("anthropic/claude-nope", anthropic.NotFoundError, 404),
        ("nope/claude", anthropic.NotFoundError, 404),
    ],
)
async def test_errors_are_anthropic_s_classes(
    wired: Wired, model: str, error: type[anthropic.APIStatusError], status: int
) -> None:
    async with wired.client() as client:
        with pytest.raises(error) as raised:
            await client.messages.create(model=model, max_tokens=64, messages=USER)
    assert raised.value.status_code == status
    body: Any = raised.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == wire_type(status)


def wire_type(status: int) -> str:
    return {
        404: "not_found_error",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }[status]


async def test_a_bad_token_is_an_authentication_error(wired: Wired) -> None:
    async with wired.client(token="not-a-token") as client:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    body: Any = raised.value.body
    assert body["error"]["type"] == "authentication_error"
    assert wired.fake.requests == []


async def test_an_invalid_body_is_a_bad_request(wired: Wired) -> None:
    async with wired.client() as client:
        with pytest.raises(anthropic.BadRequestError) as raised:
            await client.messages.create(model=MODEL, max_tokens=0, messages=USER)
    assert "max_tokens" in raised.value.message
    resp = await wired.post({"messages": USER})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_an_upstream_error_event_is_relayed_as_sent(wired: Wired) -> None:
    body = {"model": "anthropic/fake-error-mid", "max_tokens": 64, "messages": USER}
    resp = await wired.post({**body, "stream": True})
    assert resp.content == wired.fake.replies[-1]
    assert events(resp.content)[-1][0] == "error"
    async with wired.client() as client:
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            await drained(client, body)


async def drained(client: anthropic.AsyncAnthropic, body: dict[str, Any]) -> None:
    async with client.messages.stream(**body) as stream:
        async for _ in stream:
            pass


async def test_a_stream_cut_by_the_upstream_ends_with_an_error_event(wired: Wired) -> None:
    body = {"model": "anthropic/fake-drop", "max_tokens": 64, "messages": USER, "stream": True}
    resp = await wired.post(body)
    found = events(resp.content)
    assert found[0][0] == "message_start"
    name, data = found[-1]
    assert name == "error"
    assert data["error"]["type"] == "api_error"
    assert "broken reply" in data["error"]["message"] or "connection" in data["error"]["message"]


async def test_the_body_s_json_is_refused_in_anthropic_s_shape(wired: Wired) -> None:
    heads = {"x-api-key": wired.server.token, "content-type": "application/json"}
    resp = await wired.server.client.post("/v1/messages", content=b"{not json", headers=heads)
    assert resp.status_code == 400
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"
    resp = await wired.server.client.get("/v1/messages", headers=heads)
    assert resp.status_code == 405
    assert json.loads(resp.content)["error"]["type"] == "invalid_request_error"


async def test_a_beta_header_sent_twice_goes_as_one_list(wired: Wired) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": USER}
    headers = [
        ("x-api-key", wired.server.token),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "a-2025-01-01"),
        ("anthropic-beta", "b-2025-02-02"),
    ]
    resp = await wired.server.client.post("/v1/messages", json=body, headers=headers)
    assert resp.status_code == 200
    assert wired.fake.requests[-1].headers["anthropic-beta"] == "a-2025-01-01,b-2025-02-02"


async def test_the_user_s_stored_key_goes_to_anthropic(make_server: ServerFactory) -> None:
    async with FakeAnthropic(api_key="sk-ant-users-own-key-0123") as fake:
        server = await make_server(stored_key=None, anthropic_base_url=fake.base_url)
        wired = Wired(fake, server)
        async with wired.client() as client:
            with pytest.raises(anthropic.BadRequestError, match="Anthropic API Key not found"):
                await client.messages.create(model=MODEL, max_tokens=8, messages=USER)
        resp = await server.client.patch(
            "/api/profile", json={"anthropic_api_key": fake.api_key}, headers=server.auth
        )
        assert resp.status_code == 200
        async with wired.client() as client:
            message = await client.messages.create(model=MODEL, max_tokens=8, messages=USER)
    assert message.content[0].type == "text"
    assert fake.requests[-1].headers["x-api-key"] == "sk-ant-users-own-key-0123"
