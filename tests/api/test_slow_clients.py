"""Slow and idle clients over real sockets: a request head that does not arrive whole within
CHATWIRE_HEAD_TIMEOUT is a 408 and its connection closed (one that sends nothing is closed), a
body that does not arrive within CHATWIRE_BODY_TIMEOUT is a 408 that frees the chat's place,
and a client address holds at most CHATWIRE_MAX_CONNECTIONS_PER_CLIENT connections. Ordinary
clients are not touched: a long reply, an idle kept-alive connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.rawhttp import Raw, head, headers_of, json_of, status_of
from tests.conftest import ServerFactory
from tests.fakes.fake_mistral import FAULT_SLOW

TIMEOUT = 0.5
# What a loaded shared machine may add (seen: 1.0 s); without the limits nothing closes in 5 s.
SLACK = 3


async def test_a_head_that_never_ends_is_408_and_closed(make_server: ServerFactory) -> None:
    server = await make_server(head_timeout=TIMEOUT)
    conn = await Raw.open(server)
    try:
        await conn.send(b"POST /api/chat/mistral HTTP/1.1\r\nHost: chatwire\r\n")
        answer = await conn.until_closed(within=5)
    finally:
        conn.close()
    took = time.monotonic() - conn.opened
    assert status_of(answer) == 408
    assert b"CHATWIRE_HEAD_TIMEOUT" in answer
    assert TIMEOUT * 0.9 < took < TIMEOUT + SLACK


async def test_a_trickled_head_is_closed_at_its_deadline(make_server: ServerFactory) -> None:
    """Bytes that keep coming do not extend the head's time."""
    server = await make_server(head_timeout=TIMEOUT)
    conn = await Raw.open(server)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            await conn.send(b"GET /healthz HTTP/1.1\r\n")
            while True:
                await asyncio.sleep(0.05)
                await conn.send(b"X")

    task = asyncio.create_task(trickle())
    try:
        answer = await conn.until_closed(within=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        conn.close()
    assert status_of(answer) == 408
    assert time.monotonic() - conn.opened < TIMEOUT + SLACK


def _send_late_then_read(port: int) -> bytes:
    """A client that sends part of a head, more of it after the head's time is out, then
    reads: what it reads, or the error its socket gave."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(TIMEOUT + 0.5)  # answered by now, not read yet
        try:
            sock.sendall(b"X-Late: 1\r\n")
            time.sleep(0.2)
            sock.sendall(b"X-Late: 2\r\n")
            time.sleep(0.2)
            data = b""
            while part := sock.recv(65536):
                data += part
        except OSError as exc:
            return repr(exc).encode()
        return data


async def test_a_client_still_sending_after_the_408_reads_it_whole(
    make_server: ServerFactory,
) -> None:
    """The 408 is not lost to a reset: bytes that reach a closed socket make the kernel
    answer with a reset (the client's next write fails with a broken pipe, and the answer
    it had not read yet is gone), so the connection is half-closed after the answer and what
    the client sends then is read and dropped."""
    server = await make_server(head_timeout=TIMEOUT)
    port = urlsplit(server.url).port
    assert port is not None
    answer = await asyncio.to_thread(_send_late_then_read, port)
    assert status_of(answer) == 408, answer[:200]
    assert b"CHATWIRE_HEAD_TIMEOUT" in answer


async def test_a_kept_alive_connections_next_head_has_its_own_time(
    make_server: ServerFactory,
) -> None:
    """After a whole request and a pause, the next head's time counts from its first byte,
    not from the connection's start or the first request's."""
    server = await make_server(head_timeout=TIMEOUT)
    conn = await Raw.open(server)
    try:
        await conn.send(head("GET", "/healthz"))
        assert status_of(await conn.response()) == 200
        await asyncio.sleep(TIMEOUT * 0.6)
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: chatwire\r\n")
        begun = time.monotonic()
        answer = await conn.until_closed(within=5)
    finally:
        conn.close()
    assert status_of(answer) == 408
    assert TIMEOUT * 0.9 < time.monotonic() - begun < TIMEOUT + SLACK


async def test_a_connection_that_sends_nothing_is_closed(make_server: ServerFactory) -> None:
    server = await make_server(head_timeout=TIMEOUT)
    conn = await Raw.open(server)
    try:
        answer = await conn.until_closed(within=5)
    finally:
        conn.close()
    assert answer == b""
    assert time.monotonic() - conn.opened < TIMEOUT + SLACK


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat/mistral", {"chatSettings": {"model": "mistral-small-latest"}}),
        ("/v1/chat/completions", {"model": "mistral-small-latest"}),
        ("/api/profile", {"mistral_api_key": "x"}),
    ],
)
async def test_a_slow_body_is_408_and_frees_its_place(
    make_server: ServerFactory, path: str, body: dict[str, object]
) -> None:
    """10 of 1,000 bytes, then silence: a 408 within the body's time, in the route's own
    shape, the connection closed; the user's one chat place is free again."""
    server = await make_server(body_timeout=TIMEOUT, max_streams_per_user=1)
    method = "PATCH" if path == "/api/profile" else "POST"
    conn = await Raw.open(server)
    try:
        await conn.send(head(method, path, server.token, 1000) + json.dumps(body).encode()[:10])
        answer = await conn.until_closed(within=5)
    finally:
        conn.close()
    assert status_of(answer) == 408
    assert headers_of(answer)["connection"] == "close"
    shape = json_of(answer)
    message = shape["error"]["message"] if path.startswith("/v1/") else shape["message"]
    assert "CHATWIRE_BODY_TIMEOUT" in message
    assert TIMEOUT * 0.9 < time.monotonic() - conn.opened < TIMEOUT + SLACK
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert resp.status_code == 200


async def test_past_the_cap_a_client_addresss_new_connections_are_closed(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_connections_per_client=3)
    held = [await Raw.open(server) for _ in range(3)]
    try:
        await held[0].send(head("GET", "/healthz"))  # an open connection in use counts too
        await asyncio.sleep(0.1)
        extra = await Raw.open(server)
        try:
            assert await extra.until_closed(within=2) == b""
        finally:
            extra.close()
        held.pop().close()
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient(
            base_url=server.url, limits=httpx.Limits(max_connections=1)
        ) as c:
            assert (await c.get("/healthz")).status_code == 200
    finally:
        for conn in held:
            conn.close()


async def test_ordinary_clients_are_not_cut(make_server: ServerFactory) -> None:
    """A reply longer than both timeouts, and a kept-alive connection idle longer than them,
    are untouched: the head's time runs only while a head is awaited and has begun."""
    server = await make_server(head_timeout=TIMEOUT, body_timeout=TIMEOUT)
    body = server.chat_body("Tell me something slowly, " * 5, model=FAULT_SLOW)
    started = time.monotonic()
    resp = await server.client.post("/api/chat/mistral", json=body, headers=server.auth)
    assert resp.status_code == 200
    assert time.monotonic() - started > TIMEOUT * 2
    conn = await Raw.open(server)
    try:
        for _ in range(2):
            await conn.send(head("GET", "/healthz"))
            answer = await conn.response(within=2)
            assert status_of(answer) == 200
            await asyncio.sleep(TIMEOUT * 2)  # idle, under CHATWIRE_KEEP_ALIVE
    finally:
        conn.close()
