"""What the fleet's processes share through its Redis besides the policies' counters: a
routing cooldown one process set is honoured by the others, and a user's chats at once are
one count across the fleet (``CHATWIRE_MAX_STREAMS_PER_USER`` and a policy's ``parallel``
alike). Every chat goes to one process directly, on its own port, not through the balancer,
so which process answers is the test's choice.

One fleet serves the module's tests (starting one takes seconds): each test has a routing
group or a user of its own, so none sees another's cooldowns or chats.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from chatwire.routing.router import SHARED_FOR
from tests.conftest import FAKE_KEY
from tests.fakes.fake_mistral import FAULT_429, FAULT_STALL_MID, RETRY_AFTER_SECONDS, FakeMistral
from tests.fleet.conftest import FLEET, PROCESSES, Fleet, running_fleet
from tests.routing.conftest import group
from tests.routing.doors import text_of
from tests.test_serve import Served

pytestmark = [*FLEET, pytest.mark.asyncio(loop_scope="module")]

# Every user's chats at once in the fleet (the setting, counted through Redis).
STREAMS_PER_USER = 3
# A user's policy, stricter than the setting.
PARALLEL = 2
# The process that sets each cooldown test's cooldown; each has a group of its own.
SETTERS = (0, 2)
ANSWERING = "mistral-small-latest"
# A chat that streams its first words, then holds until its client goes away.
HELD = f"mistral/{FAULT_STALL_MID}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[FakeMistral]:
    async with FakeMistral(api_key=FAKE_KEY) as fake:
        yield fake


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeMistral
) -> AsyncIterator[Fleet]:
    routes = "".join(
        group(f"cooling-{n}", f"first=mistral/{FAULT_429}", f"second=mistral/{ANSWERING}")
        for n in SETTERS
    )
    async with running_fleet(
        tmp_path_factory.mktemp("fleet"),
        upstream,
        routes=routes,
        env={"CHATWIRE_MAX_STREAMS_PER_USER": str(STREAMS_PER_USER)},
    ) as fleet:
        yield fleet


def asked(fake: FakeMistral, model: str, words: str) -> int:
    """The chats the fake was asked for ``model`` whose body holds ``words``."""
    return sum(
        1
        for request in fake.requests
        if (request.json or {}).get("model") == model and words in request.raw.decode()
    )


def body(model: str, text: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}


def client(served: Served, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=served.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def chat(served: Served, token: str, model: str, text: str, stream: bool) -> httpx.Response:
    async with client(served, token) as http:
        return await http.post("/v1/chat/completions", json=body(model, text, stream))


async def ok(fleet: Fleet, *args: str) -> str:
    """A ``chatwire`` command, run as the operator would; its output."""
    done = await asyncio.to_thread(fleet.command.run, *args)
    assert done.returncode == 0, done
    return done.stdout.strip()


@pytest.mark.parametrize("setter", SETTERS)
async def test_a_cooldown_one_process_set_is_honoured_by_the_others(
    shared: Fleet, upstream: FakeMistral, setter: int
) -> None:
    name = f"cooling-{setter}"
    token = shared.tokens["alice"]
    prompt = f"Who answers {name}?"
    expected = upstream.expected_reply([{"role": "user", "content": prompt}])
    streamed = setter != 0  # the first chat streamed or not: a cooldown either way
    loop = asyncio.get_running_loop()
    resp = await chat(shared.processes[setter], token, name, prompt, streamed)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-chatwire-deployment"] == "second"
    assert text_of("chat", streamed, resp) == expected
    assert asked(upstream, FAULT_429, prompt) == 1
    began = loop.time()
    # The router puts the cooldown in Redis before it asks the next deployment, so it was
    # there before this reply began. A process reuses what it read of a group's cooldowns
    # for SHARED_FOR s: one that read them just before the cooldown was set still has "none"
    # until then. Past it, every process reads the cooldown (7 s long: the 429's
    # Retry-After) before it chooses.
    await asyncio.sleep(SHARED_FOR + 0.05)
    others = [n for n in range(PROCESSES) if n != setter]
    for n in others:
        for stream in (False, True):
            resp = await chat(shared.processes[n], token, name, prompt, stream)
            assert resp.status_code == 200, (n, stream, resp.text)
            assert resp.headers["x-chatwire-deployment"] == "second", (n, stream)
            assert text_of("chat", stream, resp) == expected, (n, stream)
            took = loop.time() - began
            assert asked(upstream, FAULT_429, prompt) == 1, (
                f"process {n} (stream={stream}) asked the cooling deployment again, "
                f"{took:.2f} s into its {RETRY_AFTER_SECONDS} s cooldown"
            )
    assert asked(upstream, ANSWERING, prompt) == 1 + 2 * len(others)


@dataclass
class Open:
    """A chat of the test's, its reply read as far as the test chose."""

    http: httpx.AsyncClient
    response: httpx.Response
    # The reply's lines, read on demand. Kept here: an iterator dropped half-way is closed
    # when it is collected, and closes the connection with it (the client gone).
    lines: AsyncIterator[str] | None = None

    async def close(self) -> None:
        """The client goes away: the chat ends (chatwire cancels its upstream request)."""
        await self.response.aclose()
        await self.http.aclose()


async def start(served: Served, token: str, text: str) -> Open:
    """A streamed chat of ``HELD``, open once its status and headers are in."""
    http = client(served, token)
    try:
        request = http.build_request(
            "POST", "/v1/chat/completions", json=body(HELD, text, stream=True)
        )
        return Open(http, await http.send(request, stream=True))
    except BaseException:
        await http.aclose()
        raise


async def first_words(opened: Open) -> str:
    """Read the chat's stream up to its first words (the upstream then holds it)."""
    assert opened.response.status_code == 200, await opened.response.aread()
    opened.lines = opened.response.aiter_lines()
    async for line in opened.lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                if choice["delta"].get("content"):
                    return str(choice["delta"]["content"])
    raise AssertionError("the stream ended before its first words")


@pytest.mark.parametrize("cap", ["streams-per-user", "policy"])
async def test_a_users_chats_at_once_are_one_cap_across_the_fleet(
    shared: Fleet, upstream: FakeMistral, cap: str
) -> None:
    user = f"holder-{cap}"
    tokens = [await ok(shared, "users", "create", user)]
    if cap == "policy":
        # The user's policy counts their chats on every token of theirs.
        limit = PARALLEL
        await ok(shared, "users", "limit", user, "--parallel", str(limit))
        tokens.append(await ok(shared, "tokens", "create", user, "--name", "second"))
        message = f"User '{user}' is at its {limit} chats at once; try again when one of them ends."
    else:
        limit = STREAMS_PER_USER
        message = (
            f"You have {limit} chats open at once, the most allowed per user "
            "(CHATWIRE_MAX_STREAMS_PER_USER); wait for one to finish."
        )
    processes = shared.processes
    marker = f"{user} chat"
    held: list[Open] = []
    try:
        # The user's chats spread over the processes (and tokens), each held open.
        for i in range(limit):
            held.append(await start(processes[i % PROCESSES], tokens[i % len(tokens)], marker))
            assert await first_words(held[-1]) == "Hello!"
        assert asked(upstream, FAULT_STALL_MID, marker) == limit

        async def refused(n: int, words: str, stream: bool) -> None:
            # An admitted chat of HELD would hold: past a bound this long, it was admitted.
            try:
                async with asyncio.timeout(15):
                    resp = await chat(processes[n], tokens[n % len(tokens)], HELD, words, stream)
            except TimeoutError:
                raise AssertionError(f"process {n} admitted a chat past the cap") from None
            assert resp.status_code == 429, (n, resp.text)
            assert resp.json()["error"]["message"] == message, n
            assert resp.headers["retry-after"] == "1"

        # One chat more is refused by every process (with the policy, process 2 holds none
        # of the user's chats: only the fleet's count can refuse it there).
        for n in range(PROCESSES):
            await refused(n, f"{user} refused {n}", stream=n % 2 == 0)
        assert asked(upstream, FAULT_STALL_MID, f"{user} refused") == 0

        # One of them ends (its client goes away, on process 0): another process admits a
        # new one, once the ended chat's place is freed in Redis (its settlement, at once).
        await held.pop(0).close()
        loop = asyncio.get_running_loop()
        ends = loop.time() + 10
        while True:
            replacement = await start(processes[-1], tokens[0], f"{user} replacement")
            if replacement.response.status_code == 200:
                held.append(replacement)
                break
            await replacement.response.aread()
            await replacement.close()
            assert replacement.response.status_code == 429, replacement.response.text
            assert replacement.response.json()["error"]["message"] == message
            assert loop.time() < ends, "no chat admitted 10 s after one of the user's ended"
            await asyncio.sleep(0.05)
        assert await first_words(replacement) == "Hello!"
        assert asked(upstream, FAULT_STALL_MID, f"{user} replacement") == 1
        # The user is at the cap again.
        await refused(0, f"{user} refused again", stream=True)
        assert asked(upstream, FAULT_STALL_MID, f"{user} refused") == 0
    finally:
        for opened in held:
            await opened.close()
