"""GET /metrics over TCP: the process's figures, in Prometheus's text format."""

from __future__ import annotations

import gc

from tests.conftest import ServerFactory


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
