"""Graceful shutdown of ``chatwire serve`` on SIGTERM: it stops accepting, lets chats in flight
finish within CHATWIRE_SHUTDOWN_GRACE, then cancels the rest, their upstream requests too."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from tests.conftest import FAKE_KEY
from tests.fakes.fake_mistral import FAULT_SLOW, FAULT_STALL, FAULT_STALL_MID, FakeMistral
from tests.test_cli import Cli
from tests.test_serve import Launch, Served, banner_token, chat_body, cli, free_port, launch

__all__ = ["cli", "launch"]  # fixtures used here


async def start(cli: Cli, launch: Launch, fake: FakeMistral, grace: float) -> tuple[Served, str]:
    assert fake.base_url is not None
    port = free_port()
    env = {
        "CHATWIRE_PORT": str(port),
        "CHATWIRE_MISTRAL_BASE_URL": fake.base_url,
        "CHATWIRE_SHUTDOWN_GRACE": str(grace),
        "MISTRAL_API_KEY": FAKE_KEY,
    }
    served = launch(cli, "serve", port=port, env=env)
    await served.wait_ready()
    return served, banner_token(served)


async def test_a_chat_in_flight_finishes_and_new_ones_are_refused(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    served, token = await start(cli, launch, fake, grace=20)
    body = chat_body("Tell me something slowly")
    body["chatSettings"]["model"] = FAULT_SLOW
    pieces: list[bytes] = []
    async with (
        served.client(token) as client,
        client.stream("POST", "/api/chat/mistral", json=body) as resp,
    ):
        assert resp.status_code == 200
        chunks = resp.aiter_raw()
        pieces.append(await anext(chunks))
        served.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        # No new connections once shutdown began...
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(trust_env=False) as other:
                await other.get(f"{served.url}/healthz")
        # ...while the chat in flight runs to its end.
        pieces += [chunk async for chunk in chunks]
    assert b"".join(pieces).decode() == fake.expected_reply(body["messages"], model=FAULT_SLOW)
    code = await asyncio.to_thread(served.proc.wait, 10)
    assert code in (0, -signal.SIGTERM), served.stderr()
    assert "Traceback" not in served.stderr(), served.stderr()


async def test_past_the_grace_the_rest_is_cancelled_upstream_included(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    served, token = await start(cli, launch, fake, grace=1)
    body = chat_body("Hang on")
    body["chatSettings"]["model"] = FAULT_STALL_MID
    async with (
        served.client(token) as client,
        client.stream("POST", "/api/chat/mistral", json=body) as resp,
    ):
        assert resp.status_code == 200
        chunks = resp.aiter_raw()
        await anext(chunks)
        assert fake.active_requests == 1
        began = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        # The reply never completes cleanly: the client's reader fails.
        with pytest.raises(httpx.RemoteProtocolError):
            async for _ in chunks:
                pass
    code = await asyncio.to_thread(served.proc.wait, 10)
    assert time.monotonic() - began < 5
    assert code in (0, -signal.SIGTERM), served.stderr()
    assert "timeout graceful shutdown exceeded" in served.stderr()
    assert "Traceback" not in served.stderr(), served.stderr()
    assert "cancelled, the server is stopping" in served.stderr()
    for _ in range(100):
        if fake.active_requests == 0:
            break
        await asyncio.sleep(0.02)
    assert fake.active_requests == 0


async def test_a_chat_not_yet_answered_when_the_grace_runs_out_gets_its_dialects_503(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    """Cancelled before its reply started, a chat's status can still change: each door's
    own 503 with Retry-After, not the server's plain-text 500."""
    served, token = await start(cli, launch, fake, grace=1)
    body = chat_body("Are you there?")
    body["chatSettings"]["model"] = FAULT_STALL
    v1 = {
        "model": f"mistral/{FAULT_STALL}",
        "messages": [{"role": "user", "content": "Are you there?"}],
    }
    async with served.client(token) as client:
        chats = [
            asyncio.create_task(client.post("/api/chat/mistral", json=body)),
            asyncio.create_task(client.post("/v1/chat/completions", json=v1)),
        ]
        for _ in range(500):
            if fake.active_requests == 2:
                break
            await asyncio.sleep(0.01)
        assert fake.active_requests == 2
        served.proc.send_signal(signal.SIGTERM)
        chat, completion = await asyncio.gather(*chats)
    for resp in chat, completion:
        assert resp.status_code == 503, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert resp.headers["retry-after"] == "1"
    assert "CHATWIRE_SHUTDOWN_GRACE" in chat.json()["message"]
    assert completion.json()["error"]["type"] == "server_error"
    assert "CHATWIRE_SHUTDOWN_GRACE" in completion.json()["error"]["message"]
    code = await asyncio.to_thread(served.proc.wait, 10)
    assert code in (0, -signal.SIGTERM), served.stderr()
    assert "Traceback" not in served.stderr(), served.stderr()
