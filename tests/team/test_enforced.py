"""Limits enforced in the pipeline, on every front door, over real HTTP to a chatwire server
and the fake Mistral: refusals before any upstream is called (429 + Retry-After naming the
limit, insufficient_quota for budgets on /v1, 403 for a budget on an unpriced model),
settlement however a chat ends, no Redis call for a caller with nothing counted, and Redis
outages (a redis-server of the test's own, stopped and started) in both failure modes."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio

from chatwire.team.allowances import FIRST_SIZE
from tests.api.test_metrics import metric
from tests.conftest import Running, ServerFactory
from tests.fakes.endless import Endless
from tests.fakes.fake_mistral import FakeMistral
from tests.redis_server import OwnRedis
from tests.team import policied
from tests.team.policied import policy

MODEL = "mistral/mistral-small-latest"
USER = [{"role": "user", "content": "Hello"}]


def front_doors(server: Running) -> dict[str, tuple[str, dict[str, Any], dict[str, str]]]:
    """Each door's path, a body and its headers."""
    anthropic = {"x-api-key": server.token, "anthropic-version": "2023-06-01"}
    return {
        "chatbot-ui": ("/api/chat/mistral", server.chat_body(), server.auth),
        "chat completions": (
            "/v1/chat/completions",
            {"model": MODEL, "messages": USER, "max_tokens": 20},
            server.auth,
        ),
        "responses": ("/v1/responses", {"model": MODEL, "input": "Hello"}, server.auth),
        "messages": (
            "/v1/messages",
            {"model": MODEL, "messages": USER, "max_tokens": 20},
            anthropic,
        ),
        "embeddings": (
            "/v1/embeddings",
            {"model": "mistral/mistral-embed", "input": "Hello"},
            server.auth,
        ),
    }


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
async def test_every_door_is_refused_past_the_rpm_before_any_upstream(
    make_server: ServerFactory, fake: FakeMistral, shared: bool, redis_url: str, prefix: str
) -> None:
    policied.POLICIES["alice"] = (None, policy(rpm=2))
    extra: dict[str, Any] = {"redis_url": redis_url, "redis_prefix": prefix} if shared else {}
    server = await make_server(**extra)
    for door, (path, body, headers) in front_doors(server).items():
        policied.POLICIES["alice"] = (None, policy(rpm=2))
        # Each door with a token of its own (counters are per token).
        fresh = await _fresh_token(server)
        headers = {k: v.replace(server.token, fresh) for k, v in headers.items()}
        for _ in range(2):
            resp = await server.client.post(path, json=body, headers=headers)
            assert resp.status_code == 200, (door, resp.text)
        asked = len(fake.usages)
        resp = await server.client.post(path, json=body, headers=headers)
        assert resp.status_code == 429, (door, resp.text)
        wait = int(resp.headers["retry-after"])
        assert 55 <= wait <= 60, door
        text = resp.text
        assert "Token 'alice-bot' is at its 2 requests per minute; try again in" in text, door
        if door in ("chat completions", "responses", "embeddings"):
            assert resp.json()["error"]["code"] == "rate_limit_exceeded"
        if door == "messages":
            assert resp.json()["error"]["type"] == "rate_limit_error"
        assert len(fake.usages) == asked  # no upstream was asked


async def _fresh_token(server: Running) -> str:
    """A new token of alice's, which the tests' store gives a token id of its own."""
    from chatwire.cli import open_store

    async with open_store(server.settings) as store:
        token: str = await store.create_token(server.name)
    _fresh_ids[token] = len(_fresh_ids) + 1
    return token


_fresh_ids: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _token_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each token its own id, so each door's counters start empty."""
    original = policied.token_id

    async def lookup(self: Any, token: str) -> Any:
        from dataclasses import replace

        record = await policied._with_policies(self, token)
        if record is not None and token in _fresh_ids and record.token_id is not None:
            return replace(record, token_id=original(record.id) * 100 + _fresh_ids[token])
        return record

    from chatwire.store.repo import Store

    monkeypatch.setattr(Store, "user_for_token", lookup)


def prices_file(tmp_path: Path) -> Path:
    """$1000 and $2000 a million tokens for mistral-small-latest: a token is 1000 and 2000
    micro-dollars, so small budgets run out in a few chats."""
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "mistral": {
                    "mistral-small-latest": [
                        {"since": "2020-01-01", "input": "1000", "output": "2000"}
                    ]
                }
            }
        )
    )
    return path


async def test_a_spent_budget_is_insufficient_quota_on_v1_and_settles_the_real_cost(
    make_server: ServerFactory, fake: FakeMistral, tmp_path: Path
) -> None:
    # A chat is reserved at about 10 input and 20 output tokens: $0.05; it costs less.
    policied.POLICIES["alice"] = (policy(budget="0.2", budget_period="day"), None)
    server = await make_server(prices_file=prices_file(tmp_path))
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key=server.token, max_retries=0
    ) as client:
        passed = 0
        error: openai.RateLimitError | None = None
        for _ in range(50):
            try:
                await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "Hello"}],
                    max_tokens=20,
                )
            except openai.RateLimitError as exc:
                error = exc
                break
            passed += 1
    assert error is not None, "the budget never ran out"
    assert error.code == "insufficient_quota"
    assert error.type == "insufficient_quota"
    assert "User 'alice' has reached its budget of $0.20 today" in error.message
    assert "it starts again in" in error.message
    assert 0 < int(error.response.headers["retry-after"]) <= 86_400
    # What passed cost what the fake reported, at the price: all of it within the budget.
    spent = sum(u["prompt_tokens"] * 1000 + u["completion_tokens"] * 2000 for u in fake.usages)
    assert len(fake.usages) == passed
    assert spent <= 200_000
    # The settled real costs let more through than the reservations alone would have.
    assert passed > 200_000 // (-(-len(json.dumps({"model": MODEL})) // 4) * 1000 + 20 * 2000)


async def test_a_budget_on_a_model_without_a_price_is_a_403(make_server: ServerFactory) -> None:
    policied.POLICIES["alice"] = (None, policy(budget=5))
    server = await make_server()
    resp = await server.client.post(
        "/v1/chat/completions",
        json={"model": "mistral/open-mistral-nemo", "messages": USER},
        headers=server.auth,
    )
    assert resp.status_code == 403, resp.text
    message = resp.json()["error"]["message"]
    assert "'mistral/open-mistral-nemo' has no price" in message
    assert "CHATWIRE_PRICES_FILE" in message


async def test_a_chat_whose_client_left_frees_its_place(
    make_server: ServerFactory, endless: Endless
) -> None:
    policied.POLICIES["alice"] = (policy(parallel=1), None)
    server = await make_server(mistral_base_url=endless.base_url)
    body = {"model": MODEL, "messages": USER, "stream": True}
    async with server.client.stream(
        "POST", "/v1/chat/completions", json=body, headers=server.auth
    ) as resp:
        assert resp.status_code == 200
        async for _ in resp.aiter_raw():
            break
        other = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
        assert other.status_code == 429
        assert "User 'alice' is at its 1 chats at once" in other.json()["error"]["message"]
    # The client went away: the chat's finally settled it.
    for _ in range(100):
        async with server.client.stream(
            "POST", "/v1/chat/completions", json=body, headers=server.auth
        ) as again:
            if again.status_code == 200:
                break
        await asyncio.sleep(0.02)
    assert again.status_code == 200


async def _evalsha_calls(url: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_one_script_call_to_admit_one_to_settle_and_none_without_limits(
    make_server: ServerFactory, own_redis: OwnRedis
) -> None:
    # The policies below change behind chatwire's back (nothing announced): the cached
    # caller must expire by time, as it does with Redis after CHATWIRE_REDIS_CACHE_TTL.
    server = await make_server(redis_url=own_redis.url, max_streams_per_user=0, redis_cache_ttl=1.0)
    body = {"model": MODEL, "messages": USER, "max_tokens": 5}
    before = await _evalsha_calls(own_redis.url)
    for _ in range(5):
        resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
        assert resp.status_code == 200
    assert await _evalsha_calls(own_redis.url) == before  # nothing counted, nothing asked
    policied.POLICIES["alice"] = (policy(tpm=100_000), policy(rpm=100, parallel=5))
    await asyncio.sleep(1.1)  # the cache of the token's user lasts 1 s
    # The first calls load the scripts (an EVALSHA that finds none, then the script).
    resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
    assert resp.status_code == 200
    before = await _evalsha_calls(own_redis.url)
    for _ in range(5):
        resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
        assert resp.status_code == 200
    assert await _evalsha_calls(own_redis.url) - before == 10


async def _metrics(server: Running) -> str:
    return (await server.client.get("/metrics")).text


class Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("failure", ["open", "closed"])
async def test_redis_stopped_and_started_again(
    make_server: ServerFactory,
    own_redis: OwnRedis,
    failure: str,
) -> None:
    policied.POLICIES["alice"] = (None, policy(rpm=1000))
    server = await make_server(redis_url=own_redis.url, redis_failure=failure, redis_timeout=0.2)
    # chatwire's loggers do not propagate to the root, where caplog listens.
    said = Said()
    logging.getLogger("chatwire.limits").addHandler(said)
    body = {"model": MODEL, "messages": USER, "max_tokens": 5}

    async def chat() -> httpx.Response:
        return await server.client.post("/v1/chat/completions", json=body, headers=server.auth)

    assert (await chat()).status_code == 200
    assert metric(await _metrics(server), "chatwire_redis_up") == 1
    await own_redis.stop()
    loop = asyncio.get_running_loop()
    statuses = []
    for _ in range(10):
        started = loop.time()
        resp = await chat()
        assert loop.time() - started < 2  # never a hang
        statuses.append(resp.status_code)
        if failure == "closed" and resp.status_code == 503:
            assert resp.headers["retry-after"] == "1"
            assert "CHATWIRE_REDIS_FAILURE=closed" in resp.json()["error"]["message"]
    if failure == "open":
        assert set(statuses) == {200}
    else:
        # A chat admitted from this process's allowance (reserved in Redis while it
        # answered, team.allowances) is served: it was counted before the outage. Every
        # other chat is refused.
        served = statuses.count(200)
        assert statuses == [200] * served + [503] * (10 - served), statuses
        assert served <= FIRST_SIZE
    down = [r for r in said.records if "does not answer" in r.getMessage()]
    assert len(down) == 1, said.records
    text = await _metrics(server)
    assert metric(text, "chatwire_redis_up") == 0
    assert metric(text, "chatwire_redis_outages_total") == 1
    await own_redis.start()
    for _ in range(60):
        if metric(await _metrics(server), "chatwire_redis_up") == 1:
            break
        await asyncio.sleep(0.05)
    assert metric(await _metrics(server), "chatwire_redis_up") == 1
    back = [r for r in said.records if "answers again" in r.getMessage()]
    assert len(back) == 1
    assert (await chat()).status_code == 200
    # Counted in Redis again.
    client = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        keys = [key async for key in client.scan_iter(match="chatwire:*")]
    finally:
        await client.aclose()
    assert any(key.endswith(b":rpm") for key in keys), keys
    logging.getLogger("chatwire.limits").removeHandler(said)


async def test_failed_chats_cost_the_budget_nothing(
    make_server: ServerFactory, fake: FakeMistral, tmp_path: Path
) -> None:
    # Each chat reserves about $0.05 of a $0.2 budget; chats the upstream failed before
    # its reply give their reservation back whole, as their ledger rows cost nothing.
    policied.POLICIES["alice"] = (policy(budget="0.2", budget_period="day"), None)
    server = await make_server(prices_file=prices_file(tmp_path), upstream_retries=0)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}
    fake.fail_next(500, times=12)
    for _ in range(12):
        resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
        assert resp.status_code == 500, resp.text
        assert "Mistral answered 500" in resp.text
    # Were their reservations kept, the budget would be gone after four of them.
    resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
    assert resp.status_code == 200, resp.text
