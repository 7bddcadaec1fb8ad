"""The usage ledger, end to end over TCP: one row per chat with exactly the counts each
family's fake reported, on every front door (chatbot-ui's text route too), streamed and
not, and embeddings; a client that leaves mid-stream (cancelled, its output estimated); an
upstream error; an unpriced model (no cost, flagged, counted, warned once); /api/usage for
a member and an admin; ``chatwire usage report``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from chatwire.cli import main
from chatwire.store.db import make_engine
from chatwire.store.ledger import Ledger
from chatwire.store.models import UsageRollupRow, UsageRow
from chatwire.store.records import UserRecord
from chatwire.store.repo import Store
from chatwire.team.prices import Prices
from chatwire.team.usage import Usage
from tests.conftest import Running, ServerFactory, add_user
from tests.fakes._faults import FAULT_500, FAULT_STALL_MID
from tests.fakes.fake_mistral import FakeMistral
from tests.test_usage_exact import DOORS, USER, Family
from tests.test_usage_exact import family as family  # the fixture

PRICES = Prices.load()


async def ledger_rows(server: Running, count: int, within: float = 5.0) -> list[Any]:
    """The server's ledger rows, once there are ``count`` (the writer batches them)."""
    engine = make_engine(server.settings.resolved_database_url)
    try:
        started = time.monotonic()
        while True:
            async with engine.connect() as connection:
                found = await connection.scalar(select(func.count()).select_from(UsageRow))
                if found is not None and found >= count:
                    result = await connection.execute(select(UsageRow).order_by(UsageRow.id))
                    return list(result.all())
            if time.monotonic() - started > within:
                raise AssertionError(f"{found} ledger rows, not {count}")
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


def counts(row: Any) -> Usage:
    return Usage(
        input=row.input_tokens,
        output=row.output_tokens,
        cached_input=row.cached_input_tokens,
        cache_write=row.cache_write_tokens,
        reasoning=row.reasoning_tokens,
        estimated=row.estimated,
    )


async def text_route(chat: Family) -> None:
    family = chat
    provider, model = family.model.split("/", 1)
    server = family.server
    body = {"chatSettings": {"model": model}, "messages": USER}
    resp = await server.client.post(f"/api/chat/{provider}", json=body, headers=server.auth)
    assert resp.status_code == 200, resp.text
    assert resp.text


async def test_one_row_per_chat_with_the_counts_reported(family: Family) -> None:
    server = family.server
    provider, model = family.model.split("/", 1)
    asks: list[tuple[str, Any]] = [
        (f"{door}, {'streamed' if stream else 'whole'}", (ask, stream))
        for door, (ask, _) in DOORS.items()
        for stream in (False, True)
    ]
    asks.append(("chatbot-ui", None))
    expected: dict[str, tuple[str, Usage]] = {}
    for name, how in asks:
        if how is None:
            await text_route(family)
        else:
            ask, stream = how
            await ask(family, stream)
        expected[name] = (name, Usage.from_canonical(family.reported))
    rows = await ledger_rows(server, len(asks))
    assert len(rows) == len(asks)  # one row per chat, no more
    got = {name: (name, counts(row)) for (name, _), row in zip(asks, rows, strict=True)}
    assert got == expected
    doors = [row.dialect for row in rows]
    assert doors == ["chat"] * 2 + ["responses"] * 2 + ["messages"] * 2 + ["chatbot-ui"]
    price = PRICES.price(provider, model)
    for row in rows:
        assert (row.outcome, row.user_id, row.provider, row.model) == (
            "complete",
            server.user_id,
            provider,
            model,
        )
        assert row.token_id is None or isinstance(row.token_id, int)
        assert row.priced == (price is not None)
        if price is None:
            assert row.cost is None
        else:
            assert row.cost == price.cost(counts(row)).quantize(row.cost)
        assert row.duration_ms >= 0
        assert row.first_byte_ms is not None
        assert row.request_id


async def test_embeddings_leave_a_row(server: Running) -> None:
    resp = await server.client.post(
        "/v1/embeddings",
        json={"model": "mistral/mistral-embed", "input": ["one text", "another"]},
        headers=server.auth,
    )
    assert resp.status_code == 200, resp.text
    prompt = resp.json()["usage"]["prompt_tokens"]
    [row] = await ledger_rows(server, 1)
    assert (row.dialect, row.outcome, row.model) == ("embeddings", "complete", "mistral-embed")
    assert (row.input_tokens, row.output_tokens, row.estimated) == (prompt, 0, False)
    assert row.cost == PRICES.cost("mistral", "mistral-embed", counts(row))


@pytest.mark.parametrize("route", ["chatbot-ui", "chat"])
async def test_a_client_that_leaves_mid_stream_pays_for_what_it_got(
    server: Running, fake: FakeMistral, route: str
) -> None:
    if route == "chatbot-ui":
        path, body = "/api/chat/mistral", server.chat_body(model=FAULT_STALL_MID)
    else:
        path = "/v1/chat/completions"
        body = {"model": f"mistral/{FAULT_STALL_MID}", "messages": USER, "stream": True}
    received = asyncio.Event()

    async def call() -> None:
        async with server.client.stream("POST", path, json=body, headers=server.auth) as resp:
            async for _ in resp.aiter_raw():
                received.set()

    task = asyncio.create_task(call())
    await asyncio.wait_for(received.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [row] = await ledger_rows(server, 1)
    assert row.outcome == "cancelled"
    assert row.estimated
    # Input from the size of what went upstream (the provider counts that), a token in 4 bytes.
    assert row.input_tokens == -(-len(fake.requests[-1].raw) // 4)
    assert row.output_tokens >= 1
    assert row.priced is False  # the fake's fault model has no price
    assert row.cost is None


async def test_failures_leave_rows_of_no_tokens(server: Running) -> None:
    failing = {"model": f"mistral/{FAULT_500}", "messages": USER}
    unknown = {"model": "nobody/none", "messages": USER}
    for body in (failing, unknown):
        await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
    # Not authenticated: no row.
    await server.client.post("/v1/chat/completions", json=failing)
    rows = await ledger_rows(server, 2)
    await asyncio.sleep(0.4)
    rows = await ledger_rows(server, 2)
    assert [(r.outcome, r.input_tokens, r.output_tokens, r.cost) for r in rows] == [
        ("upstream_error", 0, 0, 0),
        ("invalid", 0, 0, 0),
    ]
    assert rows[1].provider is None


async def test_an_unpriced_model_is_flagged_never_free(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    assert PRICES.price("mistral", "ministral-3b-latest") is None
    caplog.set_level(logging.WARNING, logger="chatwire.usage")
    for _ in range(2):
        resp = await server.client.post(
            "/api/chat/mistral",
            json=server.chat_body(model="ministral-3b-latest"),
            headers=server.auth,
        )
        assert resp.status_code == 200
    rows = await ledger_rows(server, 2)
    assert [(r.cost, r.priced, r.estimated) for r in rows] == [(None, False, False)] * 2
    assert rows[0].input_tokens > 0
    assert rows[0].output_tokens > 0
    warnings = [r for r in caplog.records if "has no price" in r.getMessage()]
    assert len(warnings) == 1
    assert "mistral/ministral-3b-latest" in warnings[0].getMessage()
    metrics = (await server.client.get("/metrics")).text
    assert (
        'chatwire_usage_unpriced_chats_total{model="ministral-3b-latest",provider="mistral"} 2.0'
        in metrics
    )
    assert 'chatwire_usage_tokens_total{kind="input",model="ministral-3b-latest"' in metrics


async def test_metrics_count_tokens_and_cost(server: Running) -> None:
    resp = await server.client.post(
        "/v1/chat/completions",
        json={"model": "mistral/mistral-small-latest", "messages": USER},
        headers=server.auth,
    )
    usage = Usage.from_canonical(resp.json()["usage"])
    metrics = (await server.client.get("/metrics")).text
    labels = 'model="mistral-small-latest",provider="mistral"'
    assert f'chatwire_usage_tokens_total{{kind="output",{labels}}} {usage.output}.0' in metrics
    cost = PRICES.cost("mistral", "mistral-small-latest", usage)
    assert cost is not None
    assert f"chatwire_usage_cost_dollars_total{{{labels}}} {float(cost)}" in metrics
    assert 'chatwire_usage_chats_total{outcome="complete"} 1.0' in metrics


@pytest.fixture
def admins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users named 'root' have the admin role (as the store's role column would say)."""
    looked_up = Store.user_for_token

    async def with_role(self: Store, token: str) -> UserRecord | None:
        user = await looked_up(self, token)
        if user is not None and user.name == "root":
            return dataclasses.replace(user, role="admin")
        return user

    monkeypatch.setattr(Store, "user_for_token", with_role)


async def test_api_usage_a_member_sees_their_own_an_admin_everyones(
    make_server: ServerFactory, admins: None
) -> None:
    alice = await make_server()
    bob = await add_user(alice, "bob")
    root = await add_user(alice, "root")
    for who, times in ((alice, 2), (bob, 1)):
        for _ in range(times):
            resp = await who.client.post(
                "/api/chat/mistral", json=who.chat_body(), headers=who.auth
            )
            assert resp.status_code == 200
    await ledger_rows(alice, 3)

    async def usage(who: Running, **query: Any) -> Any:
        resp = await who.client.get("/api/usage", params=query, headers=who.auth)
        return resp.status_code, resp.json()

    # bob is a member (alice, the first user, is an admin).
    status, mine = await usage(bob, by="user", since="1d")
    assert status == 200
    assert [(g["key"], g["requests"]) for g in mine["groups"]] == [(bob.user_id, 1)]
    assert mine["total"]["requests"] == 1
    assert mine["total"]["cost"] != "0"
    status, _ = await usage(bob, by="user", user=alice.user_id)
    assert status == 400
    status, everyone = await usage(root, by="user")
    assert [(g["key"], g["requests"]) for g in everyone["groups"]] == [
        (alice.user_id, 2),
        (bob.user_id, 1),
    ]
    status, one = await usage(root, by="model", user=bob.user_id)
    assert [(g["key"], g["requests"]) for g in one["groups"]] == [
        ("mistral/mistral-small-latest", 1)
    ]
    status, days = await usage(bob, by="day", since="2d")
    assert len(days["groups"]) == 1
    assert days["groups"][0]["requests"] == 1
    status, problem = await usage(bob, since="yesterday")
    assert status == 400
    assert "not a time" in problem["message"]


async def test_api_usage_the_same_from_the_rollups_late_rows_included(
    make_server: ServerFactory,
) -> None:
    alice = await make_server()
    for model in ("mistral-small-latest", "mistral-small-latest", "ministral-3b-latest"):
        resp = await alice.client.post(
            "/api/chat/mistral", json=alice.chat_body(model=model), headers=alice.auth
        )
        assert resp.status_code == 200
    rows = await ledger_rows(alice, 3)
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    whole = {"since": today.isoformat(), "until": (today + timedelta(days=1)).isoformat()}
    cut = {"since": "1d"}  # from this time yesterday: today is cut (until now)

    async def usage(**query: Any) -> Any:
        resp = await alice.client.get("/api/usage", params=query, headers=alice.auth)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        return [(g["key"], g["requests"], g["cost"]) for g in body["groups"]], body["total"]

    before = {
        name: await usage(by="model", **query) for name, query in (("whole", whole), ("cut", cut))
    }
    cost = sum((row.cost for row in rows if row.cost is not None), Decimal(0))
    for groups, total in before.values():
        assert [(key, requests) for key, requests, _ in groups] == [
            ("mistral/ministral-3b-latest", 1),
            ("mistral/mistral-small-latest", 2),
        ]
        assert total["requests"] == 3
        assert Decimal(total["cost"]) == cost
    # The server's roller rolls hourly: here, at once, from another process's ledger.
    engine = make_engine(alice.settings.resolved_database_url)
    try:
        ledger = Ledger(engine)
        await ledger.rollup()
        async with engine.connect() as connection:
            assert await connection.scalar(select(UsageRollupRow.rolled_to)) == rows[-1].id
        for name, query in (("whole", whole), ("cut", cut)):
            assert await usage(by="model", **query) == before[name]
        # A row written late (a process's buffer after an outage) into the rolled day.
        late = {column.name: getattr(rows[0], column.name) for column in UsageRow.__table__.columns}
        del late["id"]
        late["at"] = today + timedelta(microseconds=1)
        ledger.add(late)
        await ledger.flush()
        groups, total = await usage(by="model", **whole)
        assert total["requests"] == 4
        assert Decimal(total["cost"]) == cost + (rows[0].cost or 0)
        assert await ledger.rollup() == 1
        assert await usage(by="model", **whole) == (groups, total)
    finally:
        await engine.dispose()


async def test_cli_usage_report(server: Running) -> None:
    for model in ("mistral-small-latest", "ministral-3b-latest"):
        resp = await server.client.post(
            "/api/chat/mistral", json=server.chat_body(model=model), headers=server.auth
        )
        assert resp.status_code == 200
    await ledger_rows(server, 2)
    env = {
        "CHATWIRE_DATA_DIR": str(server.settings.data_dir),
        "CHATWIRE_DATABASE_URL": server.settings.resolved_database_url,
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["usage", "report", "--since", "7d", "--by", "model"], env=env
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["model", "requests", "input"]
    small = next(line for line in lines if line.startswith("mistral/mistral-small-latest"))
    unpriced = next(line for line in lines if line.startswith("mistral/ministral-3b-latest"))
    assert small.split()[1] == "1"
    assert small.split()[-1] == "0"
    assert unpriced.split()[-2:] == ["0.000000", "1"]
    assert lines[-1].split()[:2] == ["total", "2"]
