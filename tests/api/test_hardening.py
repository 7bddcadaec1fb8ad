"""Hostile or broken input, on either side, never leaks a key, crashes a handler or hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from chatwire.gateway.upstream import Target
from tests.conftest import Running, ServerFactory
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_openai import FakeOpenAI

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serve one hand-written handler on 127.0.0.1; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def serve(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/v1"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_operator_azure_key_never_goes_to_a_users_endpoint(
    make_server: ServerFactory,
) -> None:
    async with FakeOpenAI(api_key="operator-azure-SECRET-0123") as fake:
        server = await make_server(
            stored_key=None, azure_openai_api_key="operator-azure-SECRET-0123"
        )
        resp = await server.client.patch(
            "/api/profile",
            json={
                "azure_openai_endpoint": str(fake.root_url),
                "azure_openai_35_turbo_id": "gpt-35-turbo",
            },
            headers=server.auth,
        )
        assert resp.status_code == 200
        body = server.chat_body(model="gpt-3.5-turbo")
        resp = await server.client.post("/api/chat/azure", json=body, headers=server.auth)
        assert resp.status_code == 400
        assert "AZURE_OPENAI_ENDPOINT" in resp.json()["message"]
        assert "SECRET" not in resp.text
        assert fake.requests == []


async def test_model_names_cannot_reach_other_upstream_paths(make_server: ServerFactory) -> None:
    async with FakeGemini() as fake:
        server = await make_server(stored_key=None, google_base_url=str(fake.base_url))
        await server.client.patch(
            "/api/profile", json={"google_gemini_api_key": str(fake.api_key)}, headers=server.auth
        )
        for model in ["../../v1beta/files?x=", "gemini-2.5-flash:countTokens?"]:
            body = server.chat_body(model=model)
            resp = await server.client.post("/api/chat/google", json=body, headers=server.auth)
            assert resp.status_code in (400, 404), resp.text
            assert fake.requests[-1].path.startswith("/v1beta/models/")
            assert fake.requests[-1].path.endswith(":streamGenerateContent")


async def test_redirects_are_not_followed(
    server: Running, raw_upstream: Callable[[Handler], Awaitable[str]]
) -> None:
    seen: list[str] = []

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(text="stolen")

    target = await raw_upstream(elsewhere)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(target + "/chat/completions")

    base = await raw_upstream(redirect)
    created = await server.client.post(
        "/api/custom-models",
        json={"name": "r", "model_id": "m", "base_url": base, "api_key": "sk-redirect-0123456789"},
        headers=server.auth,
    )
    body = {**server.chat_body(), "customModelId": created.json()["id"]}
    resp = await server.client.post("/api/chat/custom", json=body, headers=server.auth)
    assert resp.status_code == 502
    assert seen == []


async def test_reply_ends_when_the_upstream_says_done(
    server: Running, raw_upstream: Callable[[Handler], Awaitable[str]]
) -> None:
    async def slow_to_close(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(
            b'data: {"choices":[{"index":0,"delta":{"content":"Done."},"finish_reason":"stop"}]}\n\n'
            b"data: [DONE]\n\n"
        )
        await asyncio.sleep(5)  # holds the body open after the end of the reply
        return resp

    base = await raw_upstream(slow_to_close)
    created = await server.client.post(
        "/api/custom-models",
        json={"name": "s", "model_id": "m", "base_url": base, "api_key": ""},
        headers=server.auth,
    )
    started = time.monotonic()
    body = {**server.chat_body(), "customModelId": created.json()["id"]}
    resp = await server.client.post("/api/chat/custom", json=body, headers=server.auth)
    assert resp.status_code == 200
    assert resp.text == "Done."
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize(
    ("upstream_body", "status"),
    [
        (b'data: {"choices":[{"delta":{"content":"bad \xff"}}]}\n\n', 502),
        (b"data: [1, 2]\n\n", 502),
    ],
)
async def test_broken_upstream_streams_are_502_in_json(
    server: Running,
    raw_upstream: Callable[[Handler], Awaitable[str]],
    upstream_body: bytes,
    status: int,
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(body=upstream_body, content_type="text/event-stream")

    base = await raw_upstream(broken)
    created = await server.client.post(
        "/api/custom-models",
        json={"name": "b", "model_id": "m", "base_url": base},
        headers=server.auth,
    )
    body = {**server.chat_body(), "customModelId": created.json()["id"]}
    resp = await server.client.post("/api/chat/custom", json=body, headers=server.auth)
    assert resp.status_code == status
    assert resp.json()["message"].startswith("Custom model sent a broken reply")


async def test_error_body_with_invalid_utf8_is_still_readable(
    server: Running, raw_upstream: Callable[[Handler], Awaitable[str]]
) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=400, body=b'{"message":"bad \xff input"}', content_type="application/json"
        )

    base = await raw_upstream(refuse)
    created = await server.client.post(
        "/api/custom-models",
        json={"name": "u", "model_id": "m", "base_url": base},
        headers=server.auth,
    )
    body = {**server.chat_body(), "customModelId": created.json()["id"]}
    resp = await server.client.post("/api/chat/custom", json=body, headers=server.auth)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("Custom model answered 400: ")


async def test_invalid_utf8_in_the_request_body_is_400(server: Running) -> None:
    body = b'{"chatSettings":{"model":"m"},"messages":[{"role":"user","content":"\xff"}]}'
    resp = await server.client.post("/api/chat/mistral", content=body, headers=server.auth)
    assert resp.status_code == 400
    assert "UTF-8" in resp.json()["message"] or "JSON" in resp.json()["message"]


@pytest.mark.parametrize("record_id", ["²", "99999999999999999999", "-1", "abc"])
async def test_odd_custom_model_ids_are_not_found(server: Running, record_id: str) -> None:
    body = {**server.chat_body(), "customModelId": record_id}
    resp = await server.client.post("/api/chat/custom", json=body, headers=server.auth)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("Custom model not found")


@pytest.mark.parametrize("record_id", ["99999999999999999999", "0", "x"])
async def test_odd_record_ids_in_paths_are_400(server: Running, record_id: str) -> None:
    resp = await server.client.patch(
        f"/api/custom-models/{record_id}", json={"name": "n"}, headers=server.auth
    )
    assert resp.status_code == 400
    resp = await server.client.delete(f"/api/custom-models/{record_id}", headers=server.auth)
    assert resp.status_code == 400


def test_targets_and_calls_never_show_the_key() -> None:
    from chatwire.gateway.upstream import UpstreamCall

    target = Target(
        base_url="https://x", key="sk-SECRET-123", model="m", headers={"api-key": "sk-SECRET-123"}
    )
    call = UpstreamCall(
        url="https://x", headers={"Authorization": "Bearer sk-SECRET-123"}, body=b"{}"
    )
    assert "SECRET" not in repr(target)
    assert "SECRET" not in repr(call)
