"""What routing shows: the groups in the model lists, the deployment that answered in the
ledger row, and each deployment's figures in /metrics; weights honoured over TCP."""

from __future__ import annotations

import math
from collections import Counter

from tests.fakes.fake_mistral import FakeMistral
from tests.routing.conftest import RoutedFactory, group
from tests.routing.doors import ask
from tests.test_usage_ledger import ledger_rows

SECOND = "second=mistral/mistral-small-latest"


async def test_groups_are_listed_where_models_are(routed: RoutedFactory) -> None:
    server = await routed(group("team-large", SECOND, label="Team"))
    listed = (await server.client.get("/v1/models", headers=server.auth)).json()
    assert "team-large" in [model["id"] for model in listed["data"]]
    picker = (await server.client.get("/api/models", headers=server.auth)).json()
    assert [m["modelId"] for m in picker["route"]] == ["team-large"]
    one = await server.client.get("/v1/models/team-large", headers=server.auth)
    assert one.status_code == 200
    assert one.json()["id"] == "team-large"
    cards = await server.client.get(
        "/v1/models", headers={**server.auth, "anthropic-version": "2023-06-01"}
    )
    assert "team-large" in [card["id"] for card in cards.json()["data"]]


async def test_the_ledger_row_names_the_deployment_that_answered(
    routed: RoutedFactory, fake: FakeMistral
) -> None:
    server = await routed(group("g", "first=mistral/fake-500", SECOND))
    resp = await ask(server, "chat", "g", False)
    assert resp.status_code == 200
    (row,) = await ledger_rows(server, 1)
    assert (row.provider, row.model, row.deployment) == (
        "mistral",
        "mistral-small-latest",
        "second",
    )
    assert row.outcome == "complete"


async def test_metrics_count_attempts_failovers_cooldowns_and_first_byte(
    routed: RoutedFactory, fake: FakeMistral
) -> None:
    server = await routed(group("g", "first=mistral/fake-500", SECOND))
    assert (await ask(server, "chat", "g", True)).status_code == 200
    text = (await server.client.get("/metrics")).text
    for line in (
        'chatwire_route_attempts_total{deployment="first",group="g"} 1.0',
        'chatwire_route_attempts_total{deployment="second",group="g"} 1.0',
        'chatwire_route_failovers_total{deployment="first",group="g"} 1.0',
        'chatwire_route_cooldowns_total{deployment="first",group="g"} 1.0',
        'chatwire_route_first_byte_seconds_count{deployment="second",group="g"} 1.0',
    ):
        assert line in text, line
    assert 'chatwire_route_failovers_total{deployment="second"' not in text


async def test_weights_are_honoured_over_tcp(routed: RoutedFactory, fake: FakeMistral) -> None:
    routes = group(
        "g",
        "a=mistral/mistral-small-latest:3",
        "b=mistral/mistral-small-latest:1",
        strategy="weighted",
    )
    server = await routed(routes)
    draws = 200
    seen: Counter[str] = Counter()
    for _ in range(draws):
        resp = await ask(server, "chat", "g", False)
        seen[resp.headers["x-chatwire-deployment"]] += 1
    spread = math.sqrt(draws * 0.75 * 0.25)
    assert abs(seen["a"] - draws * 0.75) < 4.5 * spread, seen
    assert seen["a"] + seen["b"] == draws
