"""The web pages' API over HTTP: signing in and out, the session cookie, CSRF, the pages'
files, and bearer tokens working as before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from chatwire.core.security import hash_token
from chatwire.store.models import WebSession
from tests.conftest import Running

CHATS = "/api/chats"
Browser = tuple[httpx.AsyncClient, str]


@pytest.fixture
async def browser(server: Running) -> AsyncIterator[Browser]:
    """A client signed in like the pages are, with its cookie; and the session's CSRF token."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        answer = await client.post("/api/session", json={"token": server.token})
        assert answer.status_code == 201, answer.text
        yield client, answer.json()["csrf_token"]


async def test_signing_in_sets_a_strict_http_only_cookie(server: Running) -> None:
    answer = await server.client.post("/api/session", json={"token": server.token})
    assert answer.status_code == 201
    body = answer.json()
    assert body["user"] == "alice"
    assert body["csrf_header"] == "X-CSRF-Token"
    assert len(body["csrf_token"]) == 64
    cookie = answer.headers["set-cookie"]
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert parts[0].startswith("chatwire_session=")
    assert server.token not in cookie
    assert {"httponly", "samesite=strict", "path=/"} <= set(parts)
    assert "secure" not in parts  # plain HTTP; over TLS (scheme https) it is Secure


async def test_the_session_is_stored_hashed(server: Running, browser: Browser) -> None:
    session = browser[0].cookies["chatwire_session"]
    engine = create_async_engine(server.settings.resolved_database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(WebSession.token_hash))).all()
    await engine.dispose()
    assert [row.token_hash for row in rows] == [hash_token(session)]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"token": "cw_unknown"}, 401, "The bearer token is unknown or has been revoked."),
        ({}, 400, "Sign in with either a token or a sign-in link's code."),
        ({"token": "cw_x", "link": "y"}, 400, "Sign in with either a token or a sign-in link's"),
        ({"link": "not-a-link"}, 401, "This sign-in link has been used or has expired"),
        ({"token": ""}, 400, "Invalid request: token: String should have at least 1 character"),
    ],
)
async def test_signing_in_with_a_bad_token_says_why(
    server: Running, body: dict[str, str], status: int, message: str
) -> None:
    answer = await server.client.post("/api/session", json=body)
    assert answer.status_code == status
    assert answer.json()["message"].startswith(message)
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_signing_in_needs_a_json_body(server: Running, content_type: str | None) -> None:
    """What a page on another site can send without asking: no sign-in to its account."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    answer = await server.client.post(
        "/api/session", content=f'{{"token": "{server.token}"}}', headers=headers
    )
    assert ("content-type" in answer.request.headers) == (content_type is not None)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("Invalid request: Input should be a valid dict")
    assert "set-cookie" not in answer.headers


async def test_the_cookie_reads_and_with_its_csrf_token_changes(browser: Browser) -> None:
    client, csrf = browser
    assert (await client.get("/api/session")).json()["csrf_token"] == csrf
    assert (await client.get("/api/models")).status_code == 200
    refused = await client.post(CHATS, json={"title": "t", "model": "mistral/m"})
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.json()["message"]
    wrong = await client.post(
        CHATS, json={"title": "t", "model": "mistral/m"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403
    made = await client.post(
        CHATS, json={"title": "t", "model": "mistral/m"}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 201
    # The chat route takes the cookie too, with the token.
    chat = {
        "chatSettings": {"model": "mistral-small-latest"},
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert (await client.post("/api/chat/mistral", json=chat)).status_code == 403
    answer = await client.post("/api/chat/mistral", json=chat, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200
    assert answer.text == "Hello! You said: Hi"


async def test_signing_out_ends_the_session_server_side(server: Running, browser: Browser) -> None:
    client, csrf = browser
    session = client.cookies["chatwire_session"]
    answer = await client.delete("/api/session", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 204
    assert 'chatwire_session=""' in answer.headers["set-cookie"]
    async with httpx.AsyncClient(base_url=server.url) as replay:
        answer = await replay.get(CHATS, headers={"Cookie": f"chatwire_session={session}"})
    assert answer.status_code == 401
    assert answer.json()["message"] == (
        "Your session has ended or expired: sign in again (open chatwire's page at /)."
    )


async def test_without_a_cookie_or_token_the_401_is_as_before(server: Running) -> None:
    answer = await server.client.get(CHATS)
    assert answer.status_code == 401
    assert answer.json()["message"].startswith("Authentication required. Send the header")


async def test_a_bearer_token_needs_no_csrf_token_and_ignores_cookies(server: Running) -> None:
    answer = await server.client.post(
        CHATS,
        json={"title": "t", "model": "mistral/m"},
        headers={**server.auth, "Cookie": "chatwire_session=whatever"},
    )
    assert answer.status_code == 201
    answer = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers=server.auth
    )
    assert answer.status_code == 200


async def test_the_pages_are_served_with_a_strict_policy(server: Running) -> None:
    page = await server.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/web/app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    script = await server.client.get("/web/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert (await server.client.get("/web/nothing.js")).status_code == 404


async def test_over_tls_the_cookie_is_secure(server: Running) -> None:
    """Behind a TLS proxy on the same host (uvicorn trusts 127.0.0.1's X-Forwarded-Proto),
    the request's scheme is https: the cookie is sent over TLS only."""
    answer = await server.client.post(
        "/api/session", json={"token": server.token}, headers={"X-Forwarded-Proto": "https"}
    )
    assert answer.status_code == 201
    parts = [p.strip().lower() for p in answer.headers["set-cookie"].split(";")]
    assert "secure" in parts
