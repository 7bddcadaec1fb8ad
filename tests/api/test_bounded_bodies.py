"""Request bodies are bounded on every route, over real sockets: a body without a valid token
is refused before any of it is read (401 at once, the connection closed), a body larger than
its route takes is a 413 at once, declared or chunked, and a maximal body of each route passes.
"""

from __future__ import annotations

import json
import time

import pytest

from chatwire.api.bodies import CUSTOM_MODEL_BODY
from chatwire.providers.registry import credential_fields
from chatwire.store.records import MAX_FIELD_LENGTH
from tests.api.rawhttp import Raw, head, headers_of, json_of, status_of
from tests.conftest import Running

HUGE = 64 * 2**20  # declared, never sent

BODY_ROUTES = [
    ("PATCH", "/api/profile"),
    ("POST", "/api/custom-models"),
    ("PATCH", "/api/custom-models/1"),
    ("DELETE", "/api/custom-models/1"),
    ("GET", "/api/models"),
    ("POST", "/api/chat/mistral"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no token", "unknown token"])
async def test_a_body_without_a_valid_token_is_refused_before_it_is_read(
    server: Running, method: str, path: str, token: str | None
) -> None:
    conn = await Raw.open(server)
    try:
        await conn.send(head(method, path, token, HUGE) + b'{"name": "')
        answer = await conn.until_closed(within=2)
    finally:
        conn.close()
    assert status_of(answer) == 401
    assert headers_of(answer)["connection"] == "close"
    shape = json_of(answer)
    message = shape["error"]["message"] if path.startswith("/v1/") else shape["message"]
    assert "token" in message or "Authentication required" in message
    # The server carries on, and the token still opens the route.
    resp = await server.client.get("/api/profile", headers=server.auth)
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/api/profile"), ("POST", "/api/custom-models"), ("PATCH", "/api/custom-models/1")],
)
async def test_a_declared_body_over_the_routes_limit_is_413_at_once(
    server: Running, method: str, path: str
) -> None:
    conn = await Raw.open(server)
    try:
        await conn.send(head(method, path, server.token, 2**20))
        answer = await conn.until_closed(within=2)
    finally:
        conn.close()
    assert status_of(answer) == 413
    assert f"the most {path} takes" in json_of(answer)["message"]


async def test_a_chunked_body_over_the_routes_limit_is_413_before_its_end(
    server: Running,
) -> None:
    conn = await Raw.open(server)
    started = time.monotonic()
    try:
        await conn.send(
            head("POST", "/api/custom-models", server.token, None, b"Transfer-Encoding: chunked")
        )
        piece = b"x" * 4096
        for _ in range(CUSTOM_MODEL_BODY // len(piece) + 2):
            await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        answer = await conn.until_closed(within=2)  # no last chunk was sent
    finally:
        conn.close()
    assert status_of(answer) == 413
    assert f"larger than {CUSTOM_MODEL_BODY} bytes" in json_of(answer)["message"]
    assert time.monotonic() - started < 2


async def test_a_profile_update_with_every_field_at_its_longest_passes(server: Running) -> None:
    update = {
        name: ("https://example.com/" if field.url else "k")
        + "a" * (MAX_FIELD_LENGTH - (20 if field.url else 1))
        for name, field in credential_fields().items()
    }
    resp = await server.client.patch("/api/profile", json=update, headers=server.auth)
    assert resp.status_code == 200, resp.text


async def test_a_custom_model_with_every_field_at_its_longest_passes(server: Running) -> None:
    record = {
        "name": "n" * 100,
        "model_id": "m" * MAX_FIELD_LENGTH,
        "base_url": "https://example.com/" + "a" * (MAX_FIELD_LENGTH - 20),
        "api_key": "k" * MAX_FIELD_LENGTH,
        "description": "é" * MAX_FIELD_LENGTH,
        "context_length": 10_000_000,
    }
    resp = await server.client.post("/api/custom-models", json=record, headers=server.auth)
    assert resp.status_code == 201, resp.text


async def test_a_body_on_an_open_route_is_bounded_too(server: Running) -> None:
    conn = await Raw.open(server)
    try:
        await conn.send(head("GET", "/healthz", None, HUGE))
        answer = await conn.until_closed(within=2)
    finally:
        conn.close()
    assert status_of(answer) == 413


async def test_large_bodies_one_after_another_on_a_kept_alive_connection(
    server: Running,
) -> None:
    """A head and a large body in one write, twice on one connection: the body read with the
    head's end is not counted as head (it was, and the second request was a 431)."""
    content = "hi " * 100_000
    body = json.dumps(
        {
            "model": "mistral/mistral-small-latest",
            "messages": [{"role": "user", "content": content}],
        }
    ).encode()
    request = head("POST", "/v1/chat/completions", server.token, len(body)) + body
    conn = await Raw.open(server)
    try:
        for _ in range(3):
            await conn.send(request)
            answer = await conn.response(within=10)
            assert status_of(answer) == 200, answer[:300]
            assert json_of(answer)["choices"][0]["message"]["content"]
    finally:
        conn.close()
