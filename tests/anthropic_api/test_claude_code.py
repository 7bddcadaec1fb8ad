"""Claude Code (``claude -p``) with chatwire as its gateway, against the fake Anthropic
(passed through) and the fake Mistral (translated), over TCP.

Skipped unless the Claude Code CLI is installed: ``npm install @anthropic-ai/claude-code``
in a directory named by ``CHATWIRE_TEST_CLAUDE_CODE`` (its ``node_modules/.bin/claude``), or
``claude`` on the PATH. It runs with no network besides chatwire: ``ANTHROPIC_BASE_URL`` at
chatwire, the chatwire token as ``ANTHROPIC_AUTH_TOKEN`` (or ``ANTHROPIC_API_KEY``), and the
non-essential traffic turned off.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.anthropic_api._wired import Wired
from tests.conftest import FAKE_KEY, ServerFactory
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_mistral import FakeMistral


def _claude() -> str | None:
    home = os.environ.get("CHATWIRE_TEST_CLAUDE_CODE")
    if home:
        found = Path(home) / "node_modules" / ".bin" / "claude"
        return str(found) if found.exists() else None
    return shutil.which("claude")


CLAUDE = _claude()
pytestmark = pytest.mark.skipif(CLAUDE is None, reason="the Claude Code CLI is not installed")
PROMPT = "Say hello to chatwire"


async def claude(
    wired: Wired,
    tmp_path: Path,
    model: str,
    *,
    key_as: str = "ANTHROPIC_AUTH_TOKEN",
    tools: bool = False,
) -> tuple[int, str, str]:
    """``claude -p PROMPT`` at chatwire (built-in tools off unless ``tools``, then at most
    three turns): its status, output and errors."""
    assert CLAUDE is not None
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": wired.server.url,
        key_as: wired.server.token,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    options = ["--max-turns", "3"] if tools else ["--tools", ""]
    process = await asyncio.create_subprocess_exec(
        CLAUDE,
        "-p",
        PROMPT,
        *options,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def anthropic_wired(make_server: ServerFactory) -> AsyncIterator[Wired]:
    async with FakeAnthropic() as fake:
        settings = {"anthropic_base_url": fake.base_url, "anthropic_api_key": fake.api_key}
        yield Wired(fake, await make_server(stored_key=None, **settings))


def said(out: str) -> bool:
    """Whether Claude Code printed the fake's echo of the prompt (after the context Claude
    Code puts before it in the user's turn)."""
    return out.startswith("Hello! You said:") and out.strip().endswith(PROMPT)


def chats(fake: Any) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/messages"]


async def test_claude_code_through_chatwire_to_anthropic(
    anthropic_wired: Wired, tmp_path: Path
) -> None:
    status, out, err = await claude(anthropic_wired, tmp_path, "anthropic/claude-sonnet-4-5")
    assert status == 0, err
    assert said(out)
    [asked, *_] = [r for r in chats(anthropic_wired.fake) if r.json.get("stream")]
    # What Claude Code sends, reaching Anthropic unchanged but for the model's name.
    assert asked.query == {"beta": "true"}
    assert "anthropic-beta" in asked.headers
    assert asked.headers["anthropic-version"] == "2023-06-01"
    assert asked.json["model"] == "claude-sonnet-4-5"
    assert isinstance(asked.json["system"], list)


async def test_claude_code_with_an_api_key(anthropic_wired: Wired, tmp_path: Path) -> None:
    status, out, err = await claude(
        anthropic_wired, tmp_path, "anthropic/claude-sonnet-4-5", key_as="ANTHROPIC_API_KEY"
    )
    assert status == 0, err
    assert said(out)


async def test_claude_code_through_chatwire_to_mistral(
    make_server: ServerFactory, fake: FakeMistral, tmp_path: Path
) -> None:
    server = await make_server(
        stored_key=FAKE_KEY, model_aliases="claude-code-model=mistral/mistral-small-latest"
    )
    wired = Wired(fake, server)
    status, out, err = await claude(wired, tmp_path, "claude-code-model")
    assert status == 0, out + err
    assert said(out)
    sent = [r.json for r in fake.requests if r.path == "/v1/chat/completions"]
    assert sent
    assert all(body["model"] == "mistral-small-latest" for body in sent)
    assert sent[-1]["messages"][0]["role"] == "system"


async def test_claude_code_s_tool_turns_through_chatwire_to_mistral(
    make_server: ServerFactory, fake: FakeMistral, tmp_path: Path
) -> None:
    """With its tools, Claude Code's turns of tool results (with its reminders after them,
    and system turns among the messages) reach Mistral in a shape Mistral takes."""
    server = await make_server(
        stored_key=FAKE_KEY, model_aliases="claude-code-model=mistral/mistral-small-latest"
    )
    status, out, err = await claude(Wired(fake, server), tmp_path, "claude-code-model", tools=True)
    assert status == 0, out + err
    assert "API Error" not in out
    assert "The tool said:" in out
    sent = [r.json for r in fake.requests if r.path == "/v1/chat/completions"]
    assert any(m["role"] == "tool" for body in sent for m in body["messages"])
