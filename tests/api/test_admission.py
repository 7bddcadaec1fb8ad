"""Caps on chats handled at once: per process (503) and per user (429), both with Retry-After,
refused before the upstream is called; places are given back however a chat ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import openai
import pytest

from chatwire.api.admission import Admission
from chatwire.cli import open_store
from chatwire.errors import Overloaded, TooManyStreams
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FAULT_STALL, FakeMistral

CHAT = "/api/chat/mistral"


@asynccontextmanager
async def held(server: Running, token: str | None = None) -> AsyncIterator[None]:
    """A chat the fake never answers, open until the block ends."""
    headers = {"Authorization": f"Bearer {token or server.token}"}
    body = server.chat_body(model=FAULT_STALL)
    task = asyncio.create_task(server.client.post(CHAT, json=body, headers=headers))
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def wait_for_upstream(fake: FakeMistral, count: int) -> None:
    for _ in range(500):
        if len(fake.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the fake saw {len(fake.requests)} requests, not {count}")


async def test_past_the_users_cap_a_429_with_retry_after(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_streams_per_user=2)
    async with held(server), held(server):
        await wait_for_upstream(fake, 2)
        resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
        assert resp.status_code == 429
        assert resp.headers["retry-after"] == "1"
        assert "CHATWIRE_MAX_STREAMS_PER_USER" in resp.json()["message"]
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key=server.token, max_retries=0
        ) as client:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(
                    model="mistral-small-latest", messages=[{"role": "user", "content": "Hi"}]
                )
        assert len(fake.requests) == 2  # refused before the upstream was called
    # The places come back when the held chats end (client gone): a new chat goes through.
    async with asyncio.timeout(5):
        while True:
            resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
            if resp.status_code == 200:
                break
            await asyncio.sleep(0.02)


async def test_another_user_is_not_held_by_the_first_ones_cap(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_streams_per_user=1)
    async with open_store(server.settings) as store:
        bob, token = await store.create_user("bob")
        await store.update_profile(bob.id, {"mistral_api_key": str(fake.api_key)})
    async with held(server):
        await wait_for_upstream(fake, 1)
        resp = await server.client.post(
            CHAT, json=server.chat_body(), headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 200


async def test_past_the_process_cap_a_503_with_retry_after(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_streams=3, max_streams_per_user=0)
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(held(server))
        await wait_for_upstream(fake, 3)
        resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "1"
        assert "CHATWIRE_MAX_STREAMS" in resp.json()["message"]
        # Other routes still answer: the cap is on chats only.
        assert (await server.client.get("/healthz")).status_code == 200


async def test_an_unauthenticated_request_takes_no_place(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_streams=1)
    for _ in range(3):
        resp = await server.client.post(CHAT, json=server.chat_body())
        assert resp.status_code == 401
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 200


async def test_places_come_back_after_errors_and_successes(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_streams=1)
    for model in ("fake-500", "no-such-model", "mistral-small-latest", "fake-drop"):
        # fake-drop: the reply is cut, as it should be.
        with contextlib.suppress(httpx.RemoteProtocolError):
            await server.client.post(CHAT, json=server.chat_body(model=model), headers=server.auth)
    resp = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert resp.status_code == 200


def test_admission_counts_and_releases() -> None:
    admission = Admission(per_process=2, per_user=1)
    with admission.admit(1):
        with pytest.raises(TooManyStreams), admission.admit(1):
            pass
        with admission.admit(2):
            assert admission.open == 2
            with pytest.raises(Overloaded), admission.admit(3):
                pass
    assert admission.open == 0
    with pytest.raises(RuntimeError), admission.admit(1):
        raise RuntimeError("a failure inside gives the place back")
    assert admission.open == 0


async def test_bodies_held_at_once_have_a_budget(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    # A body is charged its bytes and what decoding it may hold (about 3 bytes per byte of
    # one long string) until its upstream request is built, then that request's bytes.
    server = await make_server(body_memory=300_000, max_streams_per_user=0)
    big = server.chat_body(content="x" * 60_000, model=FAULT_STALL)
    held = asyncio.create_task(server.client.post(CHAT, json=big, headers=server.auth))
    await wait_for_upstream(fake, 1)
    again = server.chat_body(content="y" * 70_000)
    refused = await server.client.post(CHAT, json=again, headers=server.auth)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "CHATWIRE_BODY_MEMORY" in refused.json()["message"]
    small = await server.client.post(CHAT, json=server.chat_body(), headers=server.auth)
    assert small.status_code == 200
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    for _ in range(500):  # the held chat's bytes come back once it has ended
        resp = await server.client.post(CHAT, json=again, headers=server.auth)
        if resp.status_code == 200:
            break
        await asyncio.sleep(0.01)
    assert resp.status_code == 200


async def test_a_body_the_budget_could_never_hold_decoded_is_a_413(
    make_server: ServerFactory,
) -> None:
    """Counted by what it becomes: 300 KB of tiny messages would be about 10 MB of objects."""
    server = await make_server(body_memory=4 * 2**20)
    messages = [{"role": "user", "content": "hi"}] * 10_000
    body = {"model": "mistral/mistral-small-latest", "messages": messages, "stream": True}
    resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
    assert resp.status_code == 413
    error = resp.json()["error"]
    assert "CHATWIRE_BODY_MEMORY" in error["message"]
    assert "once decoded" in error["message"]
    # The same as one message of the same size is taken. (Its reply, the fake's echo of
    # 100,000 words, is not read: the answer's status is what is asked.)
    one = [{"role": "user", "content": "hi " * 100_000}]
    body = {"model": "mistral/mistral-small-latest", "messages": one, "stream": True}
    async with server.client.stream(
        "POST", "/v1/chat/completions", json=body, headers=server.auth
    ) as taken:
        assert taken.status_code == 200
        assert taken.headers["content-type"].startswith("text/event-stream")


def test_places_give_their_bytes_back() -> None:
    admission = Admission(per_process=0, per_user=0, body_budget=100)
    with admission.admit(1) as first:
        first.charge(60)
        with pytest.raises(Overloaded), admission.admit(2) as second:
            second.charge(50)
        assert admission.body_bytes == 60
    assert admission.body_bytes == 0
