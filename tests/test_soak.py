"""The soak run, short and bounded for CI (``python -m tests.soak`` runs the long one):
concurrent chats with every fault on both APIs, each answer checked, then no leak on the
server."""

from __future__ import annotations

from tests.soak import CASES, Figures, _leaks, run_soak


async def test_a_short_soak_is_clean() -> None:
    result = await run_soak(streams=30, duration=5, seed=7)
    assert result.failures == []
    assert result.leaks == []
    assert result.chats > 200
    expected = {f"{expect} ({api})" for _, expect, _ in CASES for api in ("chatbot-ui", "v1")}
    assert set(result.outcomes) == expected  # every case happened on both APIs
    assert result.after is not None
    assert result.after.open_chats == 0


def test_the_leak_check_sees_leaks() -> None:
    base = Figures(open_chats=0, tasks=3, fds=20, rss_mb=100, upstream_connections=1)
    assert _leaks(base, base) == []
    pooled = Figures(open_chats=0, tasks=3, fds=30, rss_mb=110, upstream_connections=11)
    assert _leaks(base, pooled) == []  # idle pooled upstream connections are not leaks
    leaking = Figures(open_chats=2, tasks=40, fds=60, rss_mb=400, upstream_connections=1)
    found = " ".join(_leaks(base, leaking))
    for what in ("chats still open", "asyncio tasks", "file descriptors", "resident memory"):
        assert what in found
