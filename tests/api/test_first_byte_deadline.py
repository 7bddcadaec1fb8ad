"""CHATWIRE_FIRST_BYTE_TIMEOUT bounds the wait for the reply's first piece, from the first
try, whatever the upstream trickles meanwhile (aiohttp's read timeout restarts with each
byte). Through real sockets, on both chat APIs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.conftest import ServerFactory
from tests.scripted import SSE_HEAD, STALL, Pause, ScriptedUpstream, Step, chunk

TIMEOUT = 0.5
# Each piece comes well within the timeout; together they last far longer than it.
PINGS: list[Step] = [SSE_HEAD]
for _ in range(40):
    PINGS += [chunk(b": ping\n\n"), Pause(0.1)]
TRICKLED_HEAD: list[Step] = []
for byte in SSE_HEAD:
    TRICKLED_HEAD += [bytes([byte]), Pause(0.05)]
TRICKLED_HEAD.append(STALL)

CHAT_BODY = {
    "chatSettings": {"model": "mistral-small-latest"},
    "messages": [{"role": "user", "content": "Hi"}],
}
V1_BODY = {
    "model": "mistral/mistral-small-latest",
    "messages": [{"role": "user", "content": "Hi"}],
    "stream": True,
}


@pytest.fixture(params=[PINGS, TRICKLED_HEAD], ids=["SSE comments only", "trickled headers"])
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedUpstream]:
    script: Sequence[Step] = request.param
    scripted = ScriptedUpstream(script)
    await scripted.start()
    try:
        yield scripted
    finally:
        await scripted.stop()


async def test_a_trickling_upstream_is_a_504_after_the_first_byte_timeout(
    make_server: ServerFactory, upstream: ScriptedUpstream
) -> None:
    server = await make_server(
        mistral_base_url=upstream.base_url, first_byte_timeout=TIMEOUT, idle_timeout=TIMEOUT
    )
    for path, body in (("/api/chat/mistral", CHAT_BODY), ("/v1/chat/completions", V1_BODY)):
        started = time.perf_counter()
        resp = await server.client.post(path, json=body, headers=server.auth)
        took = time.perf_counter() - started
        assert resp.status_code == 504, resp.text
        assert "did not start answering within 0.5 s (CHATWIRE_FIRST_BYTE_TIMEOUT)" in resp.text
        # Without the deadline each script lasts over 4 s (and the trickled one then stalls
        # for good); the slack is for a loaded 2-core machine running the suite in parallel.
        assert TIMEOUT <= took < TIMEOUT + 1.5, took
