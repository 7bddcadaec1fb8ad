"""What the tests of real clients at chatwire's OpenAI door share (Codex CLI, the Vercel AI
SDK): one chatwire for the module, with a fake of each provider family behind it, and the
bodies those fakes received."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tests.conftest import FAKE_KEY, Running, Servers
from tests.fakes._server import FakeServer
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

# A model of each family, as a client names it.
MODELS: Final = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "mistral": "mistral/mistral-small-latest",
    "gemini": "google/gemini-2.5-flash",
    "ollama": "ollama/llama3.2",
}


@dataclass
class Gateway:
    """A chatwire and the fakes behind it, by family."""

    server: Running
    fakes: dict[str, FakeServer]
    folder: Path


@asynccontextmanager
async def gateway(folder: Path) -> AsyncIterator[Gateway]:
    """chatwire (its user's Mistral key stored) to the five fakes, for as long as it lasts."""
    async with (
        FakeOpenAI() as openai,
        FakeAnthropic() as anthropic,
        FakeMistral(api_key=FAKE_KEY) as mistral,
        FakeGemini() as gemini,
        FakeOllama() as ollama,
    ):
        servers = Servers(folder, mistral)
        try:
            server = await servers.start(
                openai_base_url=openai.base_url,
                openai_api_key=str(openai.api_key),
                anthropic_base_url=anthropic.base_url,
                anthropic_api_key=anthropic.api_key,
                google_base_url=gemini.base_url,
                google_gemini_api_key=gemini.api_key,
                ollama_base_url=ollama.base_url,
            )
            fakes: dict[str, FakeServer] = {
                "openai": openai,
                "anthropic": anthropic,
                "mistral": mistral,
                "gemini": gemini,
                "ollama": ollama,
            }
            yield Gateway(server, fakes, folder)
        finally:
            await servers.close()


def bodies(fake: FakeServer, containing: str = "") -> list[dict[str, Any]]:
    """The chat bodies the fake received (Anthropic's messages, Gemini's contents, the
    others' chats), those whose turns hold ``containing``."""
    found = [
        r.json
        for r in fake.requests
        if r.method == "POST"
        and (r.path in _CHATS or r.path.endswith((":streamGenerateContent", ":generateContent")))
    ]
    return [body for body in found if containing in said(body)]


_CHATS = ("/v1/messages", "/v1/chat/completions", "/api/chat")


def said(body: dict[str, Any]) -> str:
    """All of a body's turns as JSON, whatever its provider's shape."""
    return json.dumps(body.get("messages", body.get("contents")), ensure_ascii=False)
