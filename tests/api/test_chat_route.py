"""POST /api/chat/mistral through real sockets: the success contract and every error row."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import FAKE_KEY, Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral

CHAT = "/api/chat/mistral"


async def stream_pieces(
    server: Running, body: object, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    """POST and collect each body chunk as it arrives, with its arrival time."""
    pieces: list[tuple[float, bytes]] = []
    async with server.client.stream(
        "POST", CHAT, json=body, headers=headers or server.auth
    ) as resp:
        async for chunk in resp.aiter_raw():
            pieces.append((time.monotonic(), chunk))
    return resp, pieces


async def test_streams_the_reply_as_plain_text(server: Running, fake: FakeMistral) -> None:
    body = server.chat_body("Hello there")
    resp, pieces = await stream_pieces(server, body)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["x-experimental-stream-data"] == "false"
    assert resp.headers["x-accel-buffering"] == "no"
    text = b"".join(p for _, p in pieces).decode()
    assert text == fake.expected_reply(body["messages"])
    sent = fake.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.json == {
        "model": "mistral-small-latest",
        "messages": body["messages"],
        "max_tokens": 2000,
        "stream": True,
    }


async def test_body_without_content_type_is_read_as_json(
    server: Running, fake: FakeMistral
) -> None:
    body = server.chat_body("Hi")
    content = httpx.Request("POST", "/", json=body).content
    resp = await server.client.post(
        CHAT, content=content, headers={**server.auth, "Content-Type": "text/plain;charset=UTF-8"}
    )
    assert resp.status_code == 200
    assert resp.text == fake.expected_reply(body["messages"])


async def test_first_piece_arrives_before_the_upstream_finishes(
    server: Running, fake: FakeMistral
) -> None:
    # fake-slow waits 50 ms between tokens: the first piece must be here long before the end.
    resp, pieces = await stream_pieces(
        server, server.chat_body("one two three four five six", model="fake-slow")
    )
    assert resp.status_code == 200
    assert len(pieces) >= 5
    first, last = pieces[0][0], pieces[-1][0]
    assert last - first > 0.2
    assert b"".join(p for _, p in pieces).decode().startswith("Hello")


async def test_leading_whitespace_is_trimmed(make_server: ServerFactory, fake: FakeMistral) -> None:
    fake.reply = "  \n  Hi there,\n  friend "
    server = await make_server()
    resp, pieces = await stream_pieces(server, server.chat_body())
    assert resp.status_code == 200
    assert b"".join(p for _, p in pieces).decode() == "Hi there,\n  friend "


async def test_multibyte_characters_split_upstream_arrive_whole(server: Running) -> None:
    resp, pieces = await stream_pieces(server, server.chat_body(model="fake-split-utf8"))
    assert resp.status_code == 200
    for _, piece in pieces:
        piece.decode("utf-8")  # every piece on its own is valid UTF-8
    text = b"".join(p for _, p in pieces).decode()
    assert "你好" in text
    assert "🌍" in text


async def test_temperature_is_clamped_and_sent(server: Running, fake: FakeMistral) -> None:
    resp = await server.client.post(
        CHAT, json=server.chat_body(temperature=1.4), headers=server.auth
    )
    assert resp.status_code == 200
    assert fake.requests[-1].json["temperature"] == 1.0


# --- error table -------------------------------------------------------------------------


async def test_key_missing(make_server: ServerFactory) -> None:
    server = await make_server(stored_key=None)
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 400
    assert resp.json() == {
        "message": "Mistral API Key not found. Please set it in your profile settings."
    }


async def test_upstream_401_means_the_key_is_incorrect(make_server: ServerFactory) -> None:
    server = await make_server(stored_key="wrong-key-0123456789")
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 401
    assert resp.json() == {
        "message": "Mistral API Key is incorrect. Please fix it in your profile settings."
    }


async def test_upstream_4xx_is_passed_on_with_its_message(server: Running) -> None:
    # A model outside the table is forwarded (without max_tokens); Mistral's answer comes back.
    resp = await server.client.post(
        CHAT, json=server.chat_body(model="mistral-medium-3.5"), headers=server.auth
    )
    assert resp.status_code == 400
    assert resp.json() == {"message": "Mistral answered 400: Invalid model: mistral-medium-3.5"}


async def test_role_order_error_is_readable(server: Running) -> None:
    body = server.chat_body()
    body["messages"].append({"role": "assistant", "content": "Sure"})
    resp = await server.client.post(CHAT, json=body, headers=server.auth)
    assert resp.status_code == 400
    assert "Expected last role User or Tool" in resp.json()["message"]


async def test_429_passes_retry_after(server: Running) -> None:
    resp = await server.client.post(
        CHAT, json=server.chat_body(model="fake-429"), headers=server.auth
    )
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
    assert resp.json() == {"message": "Mistral answered 429: Requests rate limit exceeded"}


@pytest.mark.parametrize(("model", "status"), [("fake-500", 500), ("fake-503", 503)])
async def test_upstream_5xx_is_passed_on(server: Running, model: str, status: int) -> None:
    resp = await server.client.post(CHAT, json=server.chat_body(model=model), headers=server.auth)
    assert resp.status_code == status
    assert resp.json()["message"].startswith(f"Mistral answered {status}: ")


async def test_upstream_unreachable_is_502(make_server: ServerFactory) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = await make_server(mistral_base_url=f"http://127.0.0.1:{port}/v1")
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 502
    assert resp.json()["message"].startswith("Could not connect to Mistral")


async def test_upstream_timeout_is_504(make_server: ServerFactory, fake: FakeMistral) -> None:
    server = await make_server(first_byte_timeout=0.3)
    started = time.monotonic()
    resp = await server.client.post(
        CHAT, json=server.chat_body(model="fake-stall"), headers=server.auth
    )
    assert resp.status_code == 504
    assert time.monotonic() - started < 3
    assert resp.json()["message"] == (
        "Mistral did not start answering within 0.3 s (CHATWIRE_FIRST_BYTE_TIMEOUT). Try again later."
    )


async def test_idle_timeout_mid_stream_aborts(make_server: ServerFactory) -> None:
    server = await make_server(idle_timeout=0.3)
    with pytest.raises(httpx.RemoteProtocolError):
        await stream_pieces(server, server.chat_body(model="fake-stall-mid"))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"this is not json", "not valid JSON"),
        (b'{"messages": []}', "chatSettings"),
        (b'{"chatSettings": {"model": 1}, "messages": []}', "$.chatSettings.model"),
    ],
)
async def test_bad_body_is_400_naming_the_field(
    server: Running, body: bytes, fragment: str
) -> None:
    resp = await server.client.post(CHAT, content=body, headers=server.auth)
    assert resp.status_code == 400
    assert fragment in resp.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer cw_not-a-real-token"}, {"Authorization": "Basic YTpi"}],
)
async def test_no_or_bad_credentials_is_401(server: Running, headers: dict[str, str]) -> None:
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=headers)
    assert resp.status_code == 401
    assert (
        "Authorization: Bearer" in resp.json()["message"]
        or "tokens create" in resp.json()["message"]
    )


async def test_unknown_provider_is_404(server: Running) -> None:
    resp = await server.client.post("/api/chat/nope", json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 404
    assert "Unknown provider 'nope'" in resp.json()["message"]


async def test_upstream_failure_after_200_aborts_the_response(server: Running) -> None:
    pieces: list[bytes] = []
    statuses: list[int] = []

    async def read() -> None:
        async with server.client.stream(
            "POST", CHAT, json=server.chat_body(model="fake-drop"), headers=server.auth
        ) as resp:
            statuses.append(resp.status_code)
            async for chunk in resp.aiter_raw():
                pieces.append(chunk)

    with pytest.raises(httpx.RemoteProtocolError):
        await read()
    assert statuses == [200]
    assert pieces  # text arrived before the failure, and the end was not clean


async def wait_until(condition: Callable[[], bool], within: float = 2.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.parametrize("model", ["fake-stall", "fake-stall-mid", "fake-slow"])
async def test_client_going_away_cancels_the_upstream_request(
    server: Running, fake: FakeMistral, model: str
) -> None:
    async def chat() -> None:
        async with server.client.stream(
            "POST", CHAT, json=server.chat_body(model=model), headers=server.auth
        ) as resp:
            async for _ in resp.aiter_raw():
                pass

    task = asyncio.create_task(chat())
    await wait_until(lambda: fake.open_connections >= 1)
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    took = await wait_until(lambda: fake.open_connections == 0)
    assert took < 0.5


# --- keys: environment override and cache ------------------------------------------------


async def test_env_key_overrides_every_users_key(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(stored_key="wrong-key-0123456789", mistral_api_key=FAKE_KEY)
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 200
    assert fake.requests[-1].headers["authorization"] == f"Bearer {FAKE_KEY}"
    keys = await server.client.get("/api/keys", headers=server.auth)
    assert keys.json()["isUsingEnvKeyMap"]["mistral"] is True
    assert keys.json()["isUsingEnvKeyMap"]["openai"] is False


async def test_key_stored_elsewhere_takes_effect_within_the_cache_ttl(
    make_server: ServerFactory,
) -> None:
    from chatwire.cli import open_store

    server = await make_server(stored_key=None, cache_ttl=0.3)
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 400
    # Another process (here: another store on the same database) stores the key.
    async with open_store(server.settings) as store:
        await store.update_profile(server.user_id, {"mistral_api_key": FAKE_KEY})
    stored_at = time.monotonic()
    while True:
        resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
        if resp.status_code == 200:
            break
        assert time.monotonic() - stored_at < 1.0
        await asyncio.sleep(0.05)


async def test_failure_after_200_is_logged_with_the_request_id(server: Running) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    logger = logging.getLogger("chatwire")
    logger.addHandler(handler)
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            await stream_pieces(
                server,
                server.chat_body(model="fake-drop"),
                headers={**server.auth, "X-Request-ID": "req-drop-42"},
            )
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert any("req-drop-42" in m and "aborted" in m for m in messages), messages


async def test_every_response_carries_a_request_id(server: Running) -> None:
    ok = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert len(ok.headers["x-request-id"]) == 16
    bad = await server.client.post(
        CHAT, content=b"{", headers={**server.auth, "X-Request-ID": "abc-1"}
    )
    assert bad.headers["x-request-id"] == "abc-1"


async def test_requests_share_one_keep_alive_upstream_connection(
    server: Running, fake: FakeMistral
) -> None:
    # One pool per process: twenty chats in a row reuse a single upstream connection.
    for _ in range(20):
        resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
        assert resp.status_code == 200
    assert len(fake.requests) == 20
    assert fake.open_connections == 1


async def test_other_methods_are_405(server: Running) -> None:
    resp = await server.client.get(CHAT, headers=server.auth)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    assert "Use POST" in resp.json()["message"]


async def test_body_over_the_limit_is_413(make_server: ServerFactory) -> None:
    server = await make_server(max_body_bytes=1000)
    body = server.chat_body("x" * 2000)
    resp = await server.client.post(CHAT, json=body, headers=server.auth)
    assert resp.status_code == 413
    assert "CHATWIRE_MAX_BODY_BYTES" in resp.json()["message"]
