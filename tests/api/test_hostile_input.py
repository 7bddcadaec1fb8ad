"""Hostile requests over real sockets: header floods, giant headers and URLs (431, the
connection closed), a giant message under the body limit (relayed whole), a body over it sent
without a length (413), and the server still answering afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import pytest

from chatwire.protocol import MAX_HEAD_BYTES, MAX_HEADERS, READ_SLACK
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral


async def raw(server: Running, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes as they are; everything the server answers until it closes or 5 s pass."""
    address = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(head + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def request(path: str, headers: list[bytes], body: bytes = b"") -> bytes:
    lines = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: chatwire", b"Connection: close"]
    lines += headers
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "headers",
    [
        [b"X-Flood-%d: x" % i for i in range(MAX_HEADERS + 1)],
        [b"X-Big: " + b"a" * (MAX_HEAD_BYTES + 1)],
        [b"X-Flood-%d: " % i + b"a" * 2000 for i in range(60)],
    ],
    ids=["too many headers", "one giant header", "headers too large together"],
)
async def test_a_header_flood_is_431_and_the_server_carries_on(
    server: Running, headers: list[bytes]
) -> None:
    answer = await raw(server, request("/api/chat/mistral", headers))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"Request head too large" in answer
    ok = await server.client.post("/api/chat/mistral", json=server.chat_body(), headers=server.auth)
    assert ok.status_code == 200


async def test_a_header_line_that_never_ends_is_431(server: Running) -> None:
    """The parser holds an unfinished header line in its own buffer and reports it only at
    its end: the bytes are counted as they arrive. Just past the bound, and no line end."""
    start = b"POST /api/chat/mistral HTTP/1.1\r\nHost: x\r\nX-Endless: "
    endless = start + b"a" * (MAX_HEAD_BYTES + READ_SLACK + 1 - len(start))
    answer = await raw(server, endless)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_431_is_the_only_answer_while_the_connection_lingers(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """After a 431 the connection stays half-closed for a while; the head's own timer, shorter
    than that, must not answer again on it (a write past the FIN fails in the event loop)."""
    server = await make_server(head_timeout=0.3)
    start = b"POST /api/chat/mistral HTTP/1.1\r\nHost: x\r\nX-Endless: "
    endless = start + b"a" * (MAX_HEAD_BYTES + READ_SLACK + 1 - len(start))
    address = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(endless)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # up to the server's FIN
        await asyncio.sleep(0.6)  # past the head's time, inside the linger; not closed
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_giant_url_is_431(server: Running) -> None:
    answer = await raw(server, request("/api/chat/" + "m" * (MAX_HEAD_BYTES + 1), []))
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_ordinary_headers_pass(server: Running) -> None:
    headers = {f"X-Ordinary-{i}": "v" * 100 for i in range(MAX_HEADERS - 10)}
    resp = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers={**server.auth, **headers}
    )
    assert resp.status_code == 200


async def test_a_giant_message_under_the_limit_is_relayed_whole(
    server: Running, fake: FakeMistral
) -> None:
    content = "é" * (3 * 1024 * 1024)  # 6 MB of UTF-8, under the 10 MB body limit
    chat = server.chat_body()
    chat["messages"][0]["content"] = content  # a giant system message: a long document
    body = json.dumps(chat, ensure_ascii=False).encode()
    resp = await server.client.post("/api/chat/mistral", content=body, headers=server.auth)
    assert resp.status_code == 200
    assert resp.text == fake.expected_reply(chat["messages"])
    assert fake.requests[-1].json["messages"][0]["content"] == content


async def test_a_body_over_the_limit_without_a_length_is_413(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(max_body_bytes=1024)
    token = server.token.encode()
    body = json.dumps(server.chat_body(content="x" * 4096)).encode()
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    head = request(
        "/api/chat/mistral",
        [b"Authorization: Bearer " + token, b"Transfer-Encoding: chunked"],
    )
    answer = await raw(server, head, chunked)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"CHATWIRE_MAX_BODY_BYTES" in answer
    assert fake.requests == []
