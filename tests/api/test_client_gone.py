"""A client that goes away: the upstream request is cancelled within 100 ms, in every phase
(before the upstream answered, while waiting for the first token, mid-stream), on both chat
APIs, streamed or not. Measured by the fake's count of open TCP connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import FAKE_KEY, Running, ServerFactory
from tests.fakes.fake_mistral import FAULT_STALL, FAULT_STALL_MID, FakeMistral

WITHIN = 0.1
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me a long story"}]
# Each phase: the fake's model that holds the request there ("waiting for the first token"
# is the slow fake's: headers and the role chunk sent, the first token 30 s away).
PHASES = {
    "before the upstream answered": FAULT_STALL,
    "waiting for the first token": "mistral-small-latest",
    "mid-stream": FAULT_STALL_MID,
}
CASES = [
    (api, phase)
    for api in ("chatbot-ui", "v1 streamed", "v1 not streamed")
    for phase in PHASES
    # A non-streamed upstream answer comes whole: it has no mid-stream phase.
    if not (api == "v1 not streamed" and phase == "mid-stream")
]


@pytest.fixture
async def slow_fake() -> AsyncIterator[FakeMistral]:
    """Normal models wait 30 s before their first token (headers and role chunk sent)."""
    upstream = FakeMistral(api_key=FAKE_KEY, first_token_delay=30.0)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


def request(api: str, model: str) -> tuple[str, dict[str, Any]]:
    if api == "chatbot-ui":
        body = {"chatSettings": {"model": model}, "messages": MESSAGES}
        return "/api/chat/mistral", body
    return "/v1/chat/completions", {
        "model": f"mistral/{model}",
        "messages": MESSAGES,
        "stream": api == "v1 streamed",
    }


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.002)
    return time.monotonic() - started


@pytest.mark.parametrize(("api", "phase"), CASES)
async def test_the_upstream_request_is_cancelled_within_100_ms(
    make_server: ServerFactory, fake: FakeMistral, slow_fake: FakeMistral, api: str, phase: str
) -> None:
    model = PHASES[phase]
    upstream = slow_fake if phase == "waiting for the first token" else fake
    server: Running = await make_server(mistral_base_url=upstream.base_url)
    path, body = request(api, model)
    received = asyncio.Event()

    async def call() -> None:
        async with server.client.stream("POST", path, json=body, headers=server.auth) as resp:
            async for _ in resp.aiter_raw():
                received.set()

    task = asyncio.create_task(call())
    await wait_until(lambda: upstream.open_connections == 1 and upstream.active_requests == 1)
    if phase == "mid-stream" and api != "v1 not streamed":
        await asyncio.wait_for(received.wait(), 5)  # text has reached the client
    await asyncio.sleep(0.05)  # the phase is under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    took = await wait_until(lambda: upstream.open_connections == 0)
    assert took < WITHIN, f"the upstream connection outlived the client by {took * 1000:.0f} ms"
