"""Failover before the first byte, over TCP, on every front door, streamed and not: each
failure kind of a group's first deployment moves the chat to the next one; never once a
byte of the reply went out; a group whose every deployment fails answers the last failure
in the door's shape, at once."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_mistral import FakeMistral
from tests.routing.conftest import RoutedFactory, group
from tests.routing.doors import DOORS, PROMPT, ask, error_message, text_of

SECOND = "second=mistral/mistral-small-latest"
# Failure kind -> the first deployment, and settings it needs.
KINDS = {
    "429": ("first=mistral/fake-429", {}),
    "500": ("first=mistral/fake-500", {}),
    "529": ("first=anthropic/fake-503", {}),
    "timeout": ("first=mistral/fake-stall", {"first_byte_timeout": 0.5}),
    "refused": ("first=groq/llama-3.3-70b-versatile", {}),
}


def _asked(fake: FakeMistral | FakeAnthropic, model: str) -> int:
    return sum(1 for request in fake.requests if (request.json or {}).get("model") == model)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_failure_kind_fails_over_on_every_door(
    routed: RoutedFactory, fake: FakeMistral, claude: FakeAnthropic, kind: str
) -> None:
    first, settings = KINDS[kind]
    routes = "".join(group(f"g{i}", first, SECOND) for i in range(len(DOORS)))
    server = await routed(routes, **settings)
    expected = fake.expected_reply([{"role": "user", "content": PROMPT}])
    for i, (door, stream) in enumerate(DOORS):
        resp = await ask(server, door, f"g{i}", stream)
        assert resp.status_code == 200, (door, stream, resp.text)
        assert resp.headers["x-chatwire-deployment"] == "second", (door, stream)
        assert text_of(door, stream, resp) == expected, (door, stream)
    # The first deployment was asked each time (a refused connection reaches no one).
    if kind == "529":
        assert _asked(claude, "fake-503") == len(DOORS)
    elif kind != "refused":
        assert _asked(fake, first.split("/")[1]) == len(DOORS)
    assert _asked(fake, "mistral-small-latest") == len(DOORS)


@pytest.mark.parametrize(("door", "stream"), [d for d in DOORS if d[1]])
async def test_no_failover_once_a_byte_went_out(
    routed: RoutedFactory, fake: FakeMistral, door: str, stream: bool
) -> None:
    server = await routed(group("g", "first=mistral/fake-drop", SECOND))
    try:
        resp = await ask(server, door, "g", stream)
    except httpx.HTTPError:
        pass  # cut without a clean end, as the door does for a broken stream
    else:
        assert resp.status_code == 200
        assert resp.headers["x-chatwire-deployment"] == "first"
    assert _asked(fake, "fake-drop") == 1
    assert _asked(fake, "mistral-small-latest") == 0


@pytest.mark.parametrize(("door", "stream"), [d for d in DOORS if not d[1]])
async def test_a_broken_reply_not_yet_relayed_fails_over(
    routed: RoutedFactory, fake: FakeMistral, door: str, stream: bool
) -> None:
    """Not streamed, nothing of a reply cut halfway went to the client: the next one answers."""
    server = await routed(group("g", "first=mistral/fake-drop", SECOND))
    resp = await ask(server, door, "g", stream)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-chatwire-deployment"] == "second"
    assert _asked(fake, "fake-drop") == 1


async def test_every_deployment_failing_answers_the_last_failure_fast(
    routed: RoutedFactory, fake: FakeMistral, claude: FakeAnthropic
) -> None:
    routes = "".join(
        group(f"g{i}", "a=mistral/fake-500", "b=anthropic/fake-503") for i in range(len(DOORS))
    )
    server = await routed(routes)
    for i, (door, stream) in enumerate(DOORS):
        began = time.monotonic()
        resp = await ask(server, door, f"g{i}", stream)
        took = time.monotonic() - began
        assert resp.status_code == 529, (door, stream, resp.text)
        assert "Anthropic answered 529" in error_message(door, resp), (door, stream)
        assert took < 1.0, (door, stream, took)
    assert _asked(fake, "fake-500") == len(DOORS)
    assert _asked(claude, "fake-503") == len(DOORS)


async def test_a_failed_deployment_cools_down_and_is_skipped(
    routed: RoutedFactory, fake: FakeMistral
) -> None:
    server = await routed(group("g", "first=mistral/fake-500", SECOND), route_cooldown=30)
    for _ in range(3):
        resp = await ask(server, "chat", "g", False)
        assert resp.headers["x-chatwire-deployment"] == "second"
    assert _asked(fake, "fake-500") == 1  # skipped while it cools down


async def test_the_attempts_are_bounded(routed: RoutedFactory, fake: FakeMistral) -> None:
    routes = group("g", "a=mistral/fake-500", "b=mistral/fake-503", "c=mistral/fake-429", SECOND)
    server = await routed(routes, route_attempts=2)
    resp = await ask(server, "chat", "g", False)
    assert resp.status_code == 503  # b's, the last tried
    assert _asked(fake, "fake-429") == 0
    assert _asked(fake, "mistral-small-latest") == 0


async def test_a_deployment_without_its_key_is_skipped_with_the_reason_logged(
    routed: RoutedFactory,
    fake: FakeMistral,
    claude: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Alice stored no Anthropic key, and this deployment takes the caller's key only.
    routes = group("g", "own=anthropic/claude-sonnet-4-5", SECOND).replace(
        'name = "own"', 'name = "own"\nkey = "user"'
    )
    server = await routed(routes)
    # The server's logging config keeps chatwire's records to its own handler.
    logging.getLogger("chatwire").propagate = True
    try:
        with caplog.at_level("INFO", logger="chatwire.routing"):
            resp = await ask(server, "chat", "g", False)
    finally:
        logging.getLogger("chatwire").propagate = False
    assert resp.status_code == 200
    assert resp.headers["x-chatwire-deployment"] == "second"
    assert claude.requests == []
    assert any("skips deployment own" in r.getMessage() for r in caplog.records)


async def test_images_skip_a_deployment_whose_model_takes_none(
    routed: RoutedFactory, fake: FakeMistral, claude: FakeAnthropic
) -> None:
    """The catalogue says Mistral's small model takes no images: an image goes to Claude,
    translated for Anthropic; a text-only chat still goes to the first deployment."""
    server = await routed(
        group("g", "text=mistral/mistral-small-latest", "vision=anthropic/claude-3-haiku-20240307")
    )
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    body = {
        "model": "g",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}],
    }
    resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-chatwire-deployment"] == "vision"
    (sent,) = [r.json for r in claude.requests]
    assert sent["messages"][0]["content"][1]["type"] == "image"  # Anthropic's own shape
    assert fake.requests == []
    resp = await ask(server, "chat", "g", False)
    assert resp.headers["x-chatwire-deployment"] == "text"
