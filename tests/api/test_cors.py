"""CORS: off unless the operator names origins; then for those origins only, chat included."""

from __future__ import annotations

from tests.conftest import ServerFactory

UI = "https://chat.example.org"
PREFLIGHT = {
    "Origin": UI,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


async def test_no_cors_headers_by_default(make_server: ServerFactory) -> None:
    server = await make_server()
    preflight = await server.client.options("/api/chat/mistral", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    chat = await server.client.post(
        "/api/chat/mistral", json=server.chat_body(), headers={**server.auth, "Origin": UI}
    )
    assert chat.status_code == 200
    assert "access-control-allow-origin" not in chat.headers


async def test_configured_origins_only(make_server: ServerFactory) -> None:
    server = await make_server(cors_origins=f"{UI}, https://other.example.org")
    preflight = await server.client.options("/api/chat/mistral", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    for path, body in [
        ("/api/chat/mistral", server.chat_body()),
        (
            "/v1/chat/completions",
            {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "Hi"}]},
        ),
    ]:
        resp = await server.client.post(path, json=body, headers={**server.auth, "Origin": UI})
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == UI
        assert "x-request-id" in resp.headers["access-control-expose-headers"].lower()
    stranger = {**PREFLIGHT, "Origin": "https://evil.example.com"}
    refused = await server.client.options("/api/chat/mistral", headers=stranger)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
