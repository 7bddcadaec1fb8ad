"""X-Request-ID on every response, over TCP: the chat routes set it themselves
(test_chat_route.py), every other route gets it from one middleware; the client's own id
comes back when it is a sane one, else a new one."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Running

NEW_ID = re.compile(r"[0-9a-f]{16}")
ROUTES = [
    ("GET", "/healthz", True),
    ("GET", "/metrics", False),
    ("GET", "/openapi.json", False),
    ("GET", "/api/profile", True),
    ("GET", "/api/profile", False),  # 401
    ("PATCH", "/api/profile", True),  # 400: not JSON
    ("GET", "/api/keys", True),
    ("GET", "/api/models", True),
    ("GET", "/api/custom-models/9", True),  # 405
    ("DELETE", "/api/custom-models/9", True),  # 404
    ("GET", "/v1/models", True),
    ("GET", "/v1/models/no-such-model", True),  # 404
    ("GET", "/v1/no-such-route", True),  # 404
    ("GET", "/nowhere", False),  # 404
]


@pytest.mark.parametrize(("method", "path", "authorized"), ROUTES)
async def test_every_route_answers_with_a_request_id(
    server: Running, method: str, path: str, authorized: bool
) -> None:
    auth = server.auth if authorized else {}
    body = b"{" if method == "PATCH" else None
    given = await server.client.request(
        method, path, content=body, headers={**auth, "X-Request-ID": "trace-7f3a-01"}
    )
    minted = await server.client.request(method, path, content=body, headers=auth)
    refused = await server.client.request(
        method, path, content=body, headers={**auth, "X-Request-ID": 'no spaces; or quotes"'}
    )
    too_long = await server.client.request(
        method, path, content=body, headers={**auth, "X-Request-ID": "a" * 65}
    )
    assert given.headers["x-request-id"] == "trace-7f3a-01", given.headers
    for resp in (minted, refused, too_long):
        assert NEW_ID.fullmatch(resp.headers["x-request-id"]), resp.headers
    assert minted.headers["x-request-id"] != refused.headers["x-request-id"]
    assert given.headers.get_list("x-request-id") == ["trace-7f3a-01"]  # once, not twice
