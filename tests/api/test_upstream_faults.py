"""Upstream faults through real sockets, on both chat APIs.

Before the reply has started, each fault is an error status with a message naming what
failed. After it started, it never looks like a clean end: /api/chat cuts the response (the
client's reader fails); /v1 ends the stream with a ``data: {"error": ...}`` event and no
``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Running, ServerFactory
from tests.scripted import (
    END,
    RESET,
    SSE_HEAD,
    STALL,
    Pause,
    ScriptedUpstream,
    Step,
    delta,
    event,
)

BROKEN_BEFORE_TEXT = [SSE_HEAD, event(b"{not json"), END]
# Lets "Hello" reach the client before the fault: a fault read in the same block as the
# first text is still before the reply started, and gets an error status.
SENT = Pause(0.1)


@dataclass(frozen=True)
class Fault:
    name: str
    script: Sequence[Step]
    # Before the reply started: the status and a part of the message. After: a part of it.
    status: int | None
    says: str
    settings: dict[str, Any]

    def __str__(self) -> str:
        return self.name


BEFORE = [
    Fault("reset before headers", [RESET], 502, "Mistral", {}),
    Fault("closed before headers", [], 502, "Mistral", {}),
    Fault("not HTTP", [b"SSH-2.0-OpenSSH\r\n\r\n"], 502, "Mistral", {}),
    Fault(
        "stall before the first byte",
        [STALL],
        504,
        "CHATWIRE_FIRST_BYTE_TIMEOUT",
        # Long enough for the scripted upstream to have read the request on a busy machine
        # (0.3 s once was not, and it counted one request of two); it stalls for ever.
        {"first_byte_timeout": 1.0},
    ),
    Fault("broken first event", BROKEN_BEFORE_TEXT, 502, "not valid JSON", {}),
]
AFTER = [
    Fault("reset mid-stream", [SSE_HEAD, delta("Hello"), SENT, RESET], None, "", {}),
    Fault(
        "stall mid-stream",
        [SSE_HEAD, delta("Hello"), SENT, STALL],
        None,
        "CHATWIRE_IDLE_TIMEOUT",
        {"idle_timeout": 0.3},
    ),
    Fault(
        "malformed JSON",
        [SSE_HEAD, delta("Hello"), SENT, event(b'{"choices": [}'), END],
        None,
        "not valid JSON",
        {},
    ),
    Fault(
        "invalid UTF-8",
        [
            SSE_HEAD,
            delta("Hello"),
            SENT,
            event(b'{"choices":[{"delta":{"content":"\xff\xfe"}}]}'),
            END,
        ],
        None,
        "not valid JSON",
        {},
    ),
    Fault(
        "broken chunked framing",
        [SSE_HEAD, delta("Hello"), SENT, b"zz\r\nnonsense\r\n"],
        None,
        "",
        {},
    ),
    Fault(
        "ends without a finish reason or [DONE]",
        [SSE_HEAD, delta("Hello"), SENT, END],
        None,
        "ended before the reply was complete",
        {},
    ),
]


@pytest.fixture
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedUpstream]:
    fault: Fault = request.param
    scripted = ScriptedUpstream(fault.script)
    await scripted.start()
    try:
        yield scripted
    finally:
        await scripted.stop()


async def serve(make_server: ServerFactory, upstream: ScriptedUpstream, fault: Fault) -> Running:
    return await make_server(mistral_base_url=upstream.base_url, **fault.settings)


CHAT_BODY = {
    "chatSettings": {"model": "mistral-small-latest"},
    "messages": [{"role": "user", "content": "Hi"}],
}
V1_BODY = {
    "model": "mistral/mistral-small-latest",
    "messages": [{"role": "user", "content": "Hi"}],
    "stream": True,
}


@pytest.mark.parametrize(
    ("upstream", "fault"), [(f, f) for f in BEFORE], indirect=["upstream"], ids=str
)
async def test_before_the_reply_a_fault_is_an_error_status(
    make_server: ServerFactory, upstream: ScriptedUpstream, fault: Fault
) -> None:
    server = await serve(make_server, upstream, fault)
    chat = await server.client.post("/api/chat/mistral", json=CHAT_BODY, headers=server.auth)
    assert chat.status_code == fault.status
    assert fault.says in chat.json()["message"]
    v1 = await server.client.post("/v1/chat/completions", json=V1_BODY, headers=server.auth)
    assert v1.status_code == fault.status
    error = v1.json()["error"]
    assert fault.says in error["message"]
    assert error["type"] == "server_error"
    assert upstream.requests == 2 or fault.name == "not HTTP"


@pytest.mark.parametrize(
    ("upstream", "fault"), [(f, f) for f in AFTER], indirect=["upstream"], ids=str
)
async def test_after_the_reply_started_chatbot_ui_is_cut(
    make_server: ServerFactory, upstream: ScriptedUpstream, fault: Fault
) -> None:
    server = await serve(make_server, upstream, fault)
    received: list[bytes] = []
    statuses: list[int] = []

    async def read() -> None:
        async with server.client.stream(
            "POST", "/api/chat/mistral", json=CHAT_BODY, headers=server.auth
        ) as resp:
            statuses.append(resp.status_code)
            async for piece in resp.aiter_raw():
                received.append(piece)

    with pytest.raises(httpx.RemoteProtocolError):
        await read()
    assert statuses == [200]
    assert b"".join(received) == b"Hello"


@pytest.mark.parametrize(
    ("upstream", "fault"), [(f, f) for f in AFTER], indirect=["upstream"], ids=str
)
async def test_after_the_reply_started_v1_ends_with_an_error_event(
    make_server: ServerFactory, upstream: ScriptedUpstream, fault: Fault
) -> None:
    server = await serve(make_server, upstream, fault)
    async with server.client.stream(
        "POST", "/v1/chat/completions", json=V1_BODY, headers=server.auth
    ) as resp:
        assert resp.status_code == 200
        raw = await resp.aread()
    events = [e for e in raw.split(b"\n\n") if e]
    assert b'"content":"Hello"' in events[0]
    assert events[-1].startswith(b'data: {"error":')
    assert fault.says.encode() in events[-1]
    assert b"[DONE]" not in raw
