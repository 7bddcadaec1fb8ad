"""reasoning_effort on /v1/chat/completions as each translated provider's own control, over
TCP against the fakes: Anthropic's extended thinking budget (within max_tokens), Gemini's
thinking budget before Gemini 3 and its thinking level from it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini

MESSAGES: list[Any] = [{"role": "user", "content": "Think, then say hello"}]


async def ask(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions", json={"messages": MESSAGES, **body}, headers=auth
    )


ANTHROPIC_CASES: list[tuple[str, int | None, Any]] = [
    ("minimal", None, {"type": "enabled", "budget_tokens": 1024}),
    ("high", 30000, {"type": "enabled", "budget_tokens": 24576}),
    ("high", 5000, {"type": "enabled", "budget_tokens": 4999}),
    ("none", None, None),
]
GEMINI_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("google/gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("google/gemini-2.5-flash", "none", {"thinkingBudget": 0}),
    ("google/gemini-3-flash-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),
    ("google/gemini-3-flash-preview", "minimal", {"thinkingLevel": "low", "includeThoughts": True}),
]


async def test_anthropic_thinking_budgets(make_server: ServerFactory) -> None:
    async with FakeAnthropic() as fake:
        server = await make_server(
            stored_key=None, anthropic_base_url=fake.base_url, anthropic_api_key=fake.api_key
        )
        model = "anthropic/claude-sonnet-4-5"
        for effort, max_tokens, thinking in ANTHROPIC_CASES:
            budget = {"max_tokens": max_tokens} if max_tokens else {}
            resp = await ask(
                server.client, server.auth, model=model, reasoning_effort=effort, **budget
            )
            assert resp.status_code == 200, resp.text
            sent = fake.requests[-1].json
            assert sent.get("thinking") == thinking, effort
            if max_tokens:
                assert sent["max_tokens"] == max_tokens
        asked = len(fake.requests)
        small = await ask(
            server.client, server.auth, model=model, reasoning_effort="low", max_tokens=800
        )
        unknown = await ask(server.client, server.auth, model=model, reasoning_effort="max")
        assert len(fake.requests) == asked
    assert small.status_code == 400
    assert "above 1024 tokens" in small.json()["error"]["message"]
    assert unknown.status_code == 400
    assert "reasoning_effort must be" in unknown.json()["error"]["message"]


async def test_gemini_thinking(make_server: ServerFactory) -> None:
    async with FakeGemini() as fake:
        server = await make_server(
            stored_key=None, google_base_url=fake.base_url, google_gemini_api_key=fake.api_key
        )
        for model, effort, config in GEMINI_CASES:
            resp = await ask(server.client, server.auth, model=model, reasoning_effort=effort)
            assert resp.status_code == 200, resp.text
            assert fake.requests[-1].json["generationConfig"]["thinkingConfig"] == config
