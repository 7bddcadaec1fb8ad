"""chatwire marks its upstream requests (Via) and refuses a request that passed through it
MAX_HOPS times: a custom model pointed back at chatwire costs a few chats, not hundreds."""

from __future__ import annotations

import time

from chatwire.gateway.via import MAX_HOPS, hops, via_header
from tests.conftest import FAKE_KEY, ServerFactory
from tests.fakes.fake_mistral import FakeMistral


async def test_a_custom_model_pointing_at_chatwire_itself_is_a_508(
    make_server: ServerFactory,
) -> None:
    # Without the mark, this loop opened a nested chat per hop up to the per-user cap.
    server = await make_server(max_streams_per_user=20)
    record = {
        "name": "loop",
        "model_id": "custom/loop",
        "base_url": f"{server.url}/v1",
        "api_key": server.token,
        "context_length": 8192,
    }
    created = await server.client.post("/api/custom-models", json=record, headers=server.auth)
    assert created.status_code == 201
    started = time.perf_counter()
    v1 = await server.client.post(
        "/v1/chat/completions",
        json={"model": "custom/loop", "messages": [{"role": "user", "content": "Hi"}]},
        headers=server.auth,
    )
    assert v1.status_code == 508, v1.text
    chat = await server.client.post(
        "/api/chat/custom",
        json={**server.chat_body(), "customModelId": created.json()["id"]},
        headers=server.auth,
    )
    assert chat.status_code == 508, chat.text
    assert time.perf_counter() - started < 5
    # Each hop passes the refusal on to the one before it, down to the client.
    assert v1.json()["error"]["message"].endswith(
        "passed through chatwire 3 times (Via), "
        "the most allowed is 3: a custom model's base URL probably leads back to chatwire itself."
    )
    assert chat.json()["message"].startswith("Custom model answered 508: ")


async def test_upstream_requests_carry_chatwire_hops(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server()
    body = server.chat_body()
    resp = await server.client.post("/api/chat/mistral", json=body, headers=server.auth)
    assert resp.status_code == 200
    assert fake.requests[-1].headers["via"] == "1.1 chatwire"
    headers = {**server.auth, "Via": "1.0 cdn, 1.1 chatwire"}
    resp = await server.client.post("/api/chat/mistral", json=body, headers=headers)
    assert resp.status_code == 200
    # Only chatwire's own entries go on to a provider.
    assert fake.requests[-1].headers["via"] == "1.1 chatwire, 1.1 chatwire"
    refused = await server.client.post(
        "/api/chat/mistral",
        json=body,
        headers={**server.auth, "Via": ", ".join(["1.1 chatwire"] * MAX_HOPS)},
    )
    assert refused.status_code == 508
    assert "passed through chatwire 3 times" in refused.json()["message"]
    assert len(fake.requests) == 2
    assert FAKE_KEY not in refused.text


def test_hops_count_only_chatwire_entries() -> None:
    assert hops(None) == 0
    assert hops(b"1.1 varnish, HTTP/1.1 Chatwire (v1), 1.1 chatwire-not") == 1
    assert via_header(0) == "1.1 chatwire"
    assert via_header(MAX_HOPS + 5).count("chatwire") == MAX_HOPS
