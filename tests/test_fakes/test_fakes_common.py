"""What every fake upstream shares: constructor, counters, pacing, stop(), ``run_fake`` and\n``python -m tests.fakes``."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes import (
    FAKE_KINDS,
    FakeAnthropic,
    FakeGemini,
    FakeMistral,
    FakeOllama,
    FakeOpenAI,
    FakeServer,
    run_fake,
)
from tests.fakes._faults import FAULT_STALL

ROOT = Path(__file__).resolve().parents[2]  # where ``python -m tests.fakes`` runs
USER = [{"role": "user", "content": "hi"}]
Request = tuple[str, dict[str, str], dict[str, Any]]


def mistral(fake: FakeServer, model: str) -> Request:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    return (
        f"{fake.base_url}/chat/completions",
        headers,
        {"model": model, "messages": USER, "stream": True},
    )


def openai(fake: FakeServer, model: str) -> Request:
    return mistral(fake, model)


def anthropic(fake: FakeServer, model: str) -> Request:
    headers = {"x-api-key": str(fake.api_key), "anthropic-version": "2023-06-01"}
    request = {"model": model, "max_tokens": 50, "messages": USER, "stream": True}
    return f"{fake.base_url}/messages", headers, request


def gemini(fake: FakeServer, model: str) -> Request:
    target = f"{fake.base_url}/models/{model}:streamGenerateContent?alt=sse"
    return (
        target,
        {"x-goog-api-key": str(fake.api_key)},
        {"contents": [{"parts": [{"text": "hi"}]}]},
    )


def ollama(fake: FakeServer, model: str) -> Request:
    headers = {"Authorization": f"Bearer {fake.api_key}"} if fake.api_key else {}
    return f"{fake.base_url}/api/chat", headers, {"model": model, "messages": USER}


FAKES: tuple[tuple[type[FakeServer], str, Callable[[FakeServer, str], Request]], ...] = (
    (FakeMistral, "mistral-small-latest", mistral),
    (FakeOpenAI, "gpt-4o", openai),
    (FakeAnthropic, "claude-3-haiku-20240307", anthropic),
    (FakeGemini, "gemini-2.0-flash", gemini),
    (FakeOllama, "llama3.2", ollama),
)
IDS = [kind.__name__ for kind, _, _ in FAKES]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.mark.parametrize(("kind", "model", "request_for"), FAKES, ids=IDS)
async def test_same_keywords_same_reply(
    session: aiohttp.ClientSession,
    kind: type[FakeServer],
    model: str,
    request_for: Callable[[FakeServer, str], Request],
) -> None:
    fake = kind(
        api_key="k-123456789",
        models=[model],
        reply="Hi — there",
        first_token_delay=0.2,
        token_delay=0.0,
    )
    async with fake:
        assert fake.models == (model,)
        assert "k-123456789" not in repr(fake)
        with pytest.raises(RuntimeError, match="already started"):
            await fake.start()
        target, headers, request = request_for(fake, model)
        started = time.monotonic()
        async with session.post(target, json=request, headers=headers) as resp:
            assert resp.status == 200
            headers_after = time.monotonic() - started
            raw = await resp.read()
        body_after = time.monotonic() - started
        assert headers_after < 0.15  # headers go out before the first token's delay
        assert body_after >= 0.19
        assert fake.expected_pieces(USER) == ["Hi", " —", " there"]
        assert all(piece.encode() in raw for piece in fake.expected_pieces(USER))
        assert fake.streams_completed == 1
        assert len(fake.requests) == 1


@pytest.mark.parametrize(("kind", "model", "request_for"), FAKES, ids=IDS)
async def test_stop_does_not_wait_for_a_stalled_client(
    session: aiohttp.ClientSession,
    kind: type[FakeServer],
    model: str,
    request_for: Callable[[FakeServer, str], Request],
) -> None:
    fake = kind()  # type: ignore[call-arg]
    await fake.start()
    target, headers, request = request_for(fake, FAULT_STALL)
    waiting = asyncio.create_task(session.post(target, json=request, headers=headers))
    await fake.wait_for_active_requests(1)
    assert fake.open_connections == 1
    async with asyncio.timeout(2):
        await fake.stop()
    assert fake.open_connections == 0
    with pytest.raises(aiohttp.ClientError):
        await waiting


@pytest.mark.parametrize("kind", [kind for kind, _, _ in FAKES], ids=IDS)
async def test_connections_are_counted_at_the_protocol_level(kind: type[FakeServer]) -> None:
    async with kind() as fake:  # type: ignore[call-arg]
        assert fake.root_url is not None
        host, port = fake.root_url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        await fake.wait_for_connections(1)  # counted before any request is sent
        writer.close()
        await writer.wait_closed()
        await fake.wait_for_connections(0)


async def _serve_one(kind: str, session: aiohttp.ClientSession) -> tuple[str, int | None]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes",
        "--kind",
        kind,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        # Five interpreters starting at once beside the rest of the suite: the 5 s this had
        # was once not enough on 2 busy cores; a fake that never prints still fails here.
        async with asyncio.timeout(30):
            base_url = (await process.stdout.readline()).decode().strip()
        root = base_url.removesuffix("/v1beta").removesuffix("/v1")
        async with session.get(f"{root}/nothing-here") as resp:
            await resp.read()  # any answer shows it is serving
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            returncode = await process.wait()
    return base_url, returncode


async def test_run_fake_serves_each_kind_until_sigterm(session: aiohttp.ClientSession) -> None:
    results = await asyncio.gather(*(_serve_one(kind, session) for kind in FAKE_KINDS))
    suffixes = {"mistral": "/v1", "openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
    for kind, (base_url, returncode) in zip(FAKE_KINDS, results, strict=True):
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith(suffixes.get(kind, ""))
        assert ":" in base_url.removeprefix("http://")
        assert returncode == 0
    assert FAKE_KINDS == ("mistral", "openai", "anthropic", "gemini", "ollama")


def test_run_fake_names_the_kinds_there_are() -> None:
    with pytest.raises(ValueError, match="mistral, openai, anthropic, gemini, ollama"):
        run_fake("cohere", "127.0.0.1", 0)
