"""The hot path's work, counted rather than timed, so the guard cannot flake.

Speed itself is measured by ./bench/run; what is checked here is the work that decides it:
- every chat reuses the process's one keep-alive upstream connection (a client session or
  connector built per request would open one connection per chat);
- a reply the upstream sends at once reaches the client in a few writes, not one per delta
  (each ASGI send is one chunk of the chunked response, counted with h11).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import h11
import pytest
from aiohttp import web

from tests.conftest import Running, ServerFactory

DELTAS = 20
WORDS = [f" word{i}" for i in range(DELTAS)]


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "chat.completion.chunk",
        "created": 1732548656,
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if finish:
        body["usage"] = {"prompt_tokens": 5, "completion_tokens": DELTAS, "total_tokens": 25}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


SSE = b"".join(
    [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": word}) for word in WORDS[:-1]),
        _chunk({"content": WORDS[-1]}, finish="stop"),
        b"data: [DONE]\n\n",
    ]
)
COMPLETION = {
    "id": "cmpl-1",
    "object": "chat.completion",
    "created": 1732548656,
    "model": "mistral-small-latest",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "".join(WORDS)},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": DELTAS, "total_tokens": 25},
}


class CountingUpstream:
    """A Mistral-shaped upstream that answers every chat with one fixed reply, written at
    once, and keeps each TCP connection a request arrived on."""

    def __init__(self) -> None:
        self.connections: list[asyncio.BaseTransport] = []
        self.requests = 0

    async def chat(self, request: web.Request) -> web.Response:
        self.requests += 1
        transport = request.transport
        assert transport is not None
        if not any(known is transport for known in self.connections):
            self.connections.append(transport)
        body = await request.json()
        if body.get("stream"):
            return web.Response(body=SSE, content_type="text/event-stream")
        return web.json_response(COMPLETION)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[CountingUpstream, str]]:
    counting = CountingUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", counting.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield counting, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


ROUTES = {
    "api": ("/api/chat/mistral", None),
    "v1 streamed": ("/v1/chat/completions", True),
    "v1 not streamed": ("/v1/chat/completions", False),
}


def _body(server: Running, stream: bool | None) -> dict[str, Any]:
    if stream is None:
        return server.chat_body()
    return {
        "model": "mistral/mistral-small-latest",
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": stream,
    }


def _expected(stream: bool | None) -> str:
    # chatbot-ui's route trims the reply's leading whitespace; /v1 relays it as sent.
    return "".join(WORDS).lstrip() if stream is None else "".join(WORDS)


def _reply_text(raw: bytes, stream: bool | None) -> str:
    if stream is None:
        return raw.decode()
    if not stream:
        return str(json.loads(raw)["choices"][0]["message"]["content"])
    events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    pieces = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
    return "".join(p for p in pieces if p)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_hundred_chats_open_one_upstream_connection(
    make_server: ServerFactory, upstream: tuple[CountingUpstream, str], route: str
) -> None:
    counting, base_url = upstream
    server = await make_server(mistral_base_url=base_url)
    path, stream = ROUTES[route]
    for _ in range(100):
        resp = await server.client.post(path, json=_body(server, stream), headers=server.auth)
        assert resp.status_code == 200, resp.text
        assert _reply_text(resp.content, stream) == _expected(stream)
    assert counting.requests == 100
    assert len(counting.connections) == 1


async def _response_chunks(server: Running, path: str, body: dict[str, Any]) -> list[bytes]:
    """The body of one response, as the chunks of its chunked transfer coding."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    data = json.dumps(body).encode()
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="POST",
        target=path,
        headers=[
            ("Host", host),
            ("Authorization", f"Bearer {server.token}"),
            ("Content-Length", str(len(data))),
        ],
    )
    writer.write(
        conn.send(request) + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())
    )
    chunks: list[bytes] = []
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
            elif isinstance(event, h11.Data):
                if event.chunk_start or not chunks:
                    chunks.append(b"")
                chunks[-1] += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return chunks
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("route", ["api", "v1 streamed"])
async def test_a_reply_sent_at_once_is_relayed_in_a_few_writes(
    make_server: ServerFactory, upstream: tuple[CountingUpstream, str], route: str
) -> None:
    _, base_url = upstream
    server = await make_server(mistral_base_url=base_url)
    path, stream = ROUTES[route]
    chunks = await _response_chunks(server, path, _body(server, stream))
    assert _reply_text(b"".join(chunks), stream) == _expected(stream)
    # One write per read of the upstream's body: a write per delta would make 20 or more.
    assert len(chunks) <= 3, [len(c) for c in chunks]
