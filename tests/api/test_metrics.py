"""GET /metrics over TCP: the process's figures, in Prometheus's text format; it and the
API docs are open, or need CHATWIRE_METRICS_TOKEN when it is set."""

from __future__ import annotations

import gc

import pytest

from tests.conftest import Running, ServerFactory

METRICS_TOKEN = "operator-s3cret-0123456789"


def metric(text: str, name: str) -> float:
    """The value of one sample line of a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in:\n{text}")


async def test_an_app_started_by_someone_else_leaves_the_collector_alone(
    make_server: ServerFactory,
) -> None:
    # gc.freeze() is `chatwire serve`'s (tests/test_serve.py): an app served by another
    # program, here the test's own uvicorn, must not freeze that program's objects.
    gc.unfreeze()
    server = await make_server()
    resp = await server.client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert gc.get_freeze_count() == 0
    assert metric(resp.text, "chatwire_gc_frozen_objects") == 0
    assert metric(resp.text, "chatwire_open_chats") == 0


OPERATOR_PATHS = ("/metrics", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")


async def test_metrics_and_docs_are_open_by_default(server: Running) -> None:
    for path in OPERATOR_PATHS:
        resp = await server.client.get(path)
        assert resp.status_code == 200, (path, resp.text)


@pytest.mark.parametrize("path", OPERATOR_PATHS)
async def test_the_metrics_token_guards_metrics_and_docs(
    make_server: ServerFactory, path: str
) -> None:
    server = await make_server(metrics_token=METRICS_TOKEN)
    refused = [
        await server.client.get(path, headers=headers)
        for headers in (
            {},
            server.auth,  # a user's token is not the operator's
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
        )
    ]
    for resp in refused:
        assert resp.status_code == 401, resp.text
        assert resp.json() == {
            "message": f"{path} needs the operator's token: send the header "
            "'Authorization: Bearer <CHATWIRE_METRICS_TOKEN>'."
        }
        assert resp.headers["www-authenticate"] == 'Bearer realm="chatwire"'
        assert len(resp.headers["x-request-id"]) == 16
        assert resp.headers["server-timing"].startswith("gateway;dur=")
    allowed = await server.client.get(path, headers={"Authorization": f"bearer {METRICS_TOKEN}"})
    assert allowed.status_code == 200, allowed.text


async def test_the_metrics_token_opens_nothing_else(make_server: ServerFactory) -> None:
    server = await make_server(metrics_token=METRICS_TOKEN)
    operator = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert (await server.client.get("/healthz")).status_code == 200
    assert (await server.client.get("/api/profile", headers=operator)).status_code == 401
    assert (await server.client.get("/api/profile", headers=server.auth)).status_code == 200
    metrics = await server.client.get("/metrics", headers=operator)
    assert metric(metrics.text, "chatwire_open_chats") == 0


async def test_an_empty_metrics_token_is_no_token(make_server: ServerFactory) -> None:
    server = await make_server(metrics_token="")
    assert (await server.client.get("/metrics")).status_code == 200
