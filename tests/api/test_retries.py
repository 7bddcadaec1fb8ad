"""Upstream refusals that may pass (429, 5xx) and failed connections, tried again before the
reply starts: bounded, with backoff, honouring Retry-After, never once a byte has gone out."""

from __future__ import annotations

import contextlib
import logging
import socket
import time

import httpx
import openai
import pytest

from chatwire.gateway.upstream import UpstreamPolicy, retry_wait
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral
from tests.scripted import RESET, SSE_HEAD, Pause, ScriptedUpstream, delta

RETRYING = {"upstream_retries": 2, "retry_backoff": 0.05, "retry_max_wait": 2.0}


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_passing_refusal_is_tried_again_and_the_reply_arrives(
    make_server: ServerFactory, fake: FakeMistral, status: int
) -> None:
    server = await make_server(**RETRYING)
    fake.fail_next(status, times=2)
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert resp.status_code == 200
    assert resp.text == fake.expected_reply(server.chat_body()["messages"])
    assert len(fake.requests) == 3


async def test_retries_are_bounded_then_the_error_stands(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(**RETRYING)
    fake.fail_next(503, times=5)
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert resp.status_code == 503
    assert "Mistral answered 503" in resp.json()["message"]
    assert len(fake.requests) == 3  # the first try and two retries


async def test_retry_after_is_honoured(make_server: ServerFactory, fake: FakeMistral) -> None:
    server = await make_server(**RETRYING)
    fake.fail_next(429, retry_after="0.6")
    began = time.monotonic()
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert resp.status_code == 200
    assert time.monotonic() - began >= 0.6
    assert len(fake.requests) == 2


async def test_a_longer_retry_after_goes_back_to_the_client(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(**RETRYING)
    fake.fail_next(429, retry_after="30")
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "30"
    assert len(fake.requests) == 1


async def test_a_client_error_is_never_retried(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(**RETRYING)
    body = server.chat_body(model="no-such-model")
    resp = await server.client.post("/api/chat/mistral", json=body, headers=server.auth)
    assert resp.status_code == 400
    assert len(fake.requests) == 1


@pytest.mark.parametrize("path", ["/api/chat/mistral", "/v1/chat/completions"])
async def test_a_failure_after_the_reply_started_is_not_retried(
    make_server: ServerFactory, path: str
) -> None:
    # A 200, a piece of text, then a reset: the reply had started, so it stands as it is.
    scripted = ScriptedUpstream([SSE_HEAD, delta("Hello"), Pause(0.1), RESET])
    await scripted.start()
    try:
        server = await make_server(mistral_base_url=scripted.base_url, **RETRYING)
        body: dict[str, object] = (
            server.chat_body()
            if path.startswith("/api")
            else {
                "model": "mistral-small-latest",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": True,
            }
        )
        received = b""
        with contextlib.suppress(httpx.RemoteProtocolError):
            async with server.client.stream("POST", path, json=body, headers=server.auth) as resp:
                assert resp.status_code == 200
                async for piece in resp.aiter_raw():
                    received += piece
    finally:
        await scripted.stop()
    assert b"Hello" in received
    assert scripted.requests == 1


async def test_v1_is_retried_too(make_server: ServerFactory, fake: FakeMistral) -> None:
    server = await make_server(**RETRYING)
    fake.fail_next(500)
    async with sdk(server) as client:
        answer = await client.chat.completions.create(
            model="mistral/mistral-small-latest", messages=[{"role": "user", "content": "Hi"}]
        )
    assert answer.choices[0].message.content
    assert len(fake.requests) == 2


async def test_a_refused_connection_is_tried_again(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    # A port nothing listens on: every try is refused, each is made, then the 502 stands.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = await make_server(mistral_base_url=f"http://127.0.0.1:{port}/v1", **RETRYING)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    logger = logging.getLogger("chatwire")  # its own handlers: it does not propagate
    logger.addHandler(handler)
    began = time.monotonic()
    try:
        resp = await server.client.post(
            "/api/chat/mistral", json=server.chat_body(), headers=server.auth
        )
    finally:
        logger.removeHandler(handler)
    assert resp.status_code == 502
    assert "Could not connect to Mistral" in resp.json()["message"]
    assert time.monotonic() - began < 2.0
    tries = [r.getMessage() for r in records if "trying again" in r.getMessage()]
    assert len(tries) == 2
    assert all(t.startswith("Mistral could not be reached") for t in tries)


def test_backoff_grows_with_jitter_and_stays_bounded() -> None:
    policy = UpstreamPolicy(connect=1, first_byte=1, idle=1, retries=5, backoff=0.5, max_wait=3.0)
    waits = [[retry_wait(policy, attempt, 503, None) for _ in range(200)] for attempt in range(5)]
    for attempt, seen in enumerate(waits):
        ceiling = min(3.0, 0.5 * 2**attempt)
        assert all(w is not None and 0 <= w <= ceiling for w in seen)
        assert len(set(seen)) > 100  # jittered, not one fixed delay
    assert retry_wait(policy, 5, 503, None) is None
    assert retry_wait(policy, 0, 400, None) is None
    assert retry_wait(policy, 0, 429, "2") == 2.0
    assert retry_wait(policy, 0, 429, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_wait(policy, 0, 429, "5") is None


def sdk(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token, max_retries=0)
