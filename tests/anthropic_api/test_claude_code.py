"""Claude Code (``claude -p``) with chatwire as its gateway, against the fake Anthropic
(passed through) and the fake Mistral and OpenAI (translated), over TCP: one chatwire for the
module.

Skipped unless the Claude Code CLI is installed: ``npm install @anthropic-ai/claude-code``
in a directory named by ``CHATWIRE_TEST_CLAUDE_CODE`` (its ``node_modules/.bin/claude``), or
``claude`` on the PATH. It runs with no network besides chatwire: ``ANTHROPIC_BASE_URL`` at
chatwire, the chatwire token as ``ANTHROPIC_AUTH_TOKEN`` (or ``ANTHROPIC_API_KEY``), and the
non-essential traffic turned off. A tool turn is the fake asking for Read of a file the test
made (``tool_arguments``), Claude Code reading it and sending its content back, and the fake
answering ``"The tool said: <content>"``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import FAKE_KEY, Running, Servers
from tests.fakes._server import FakeServer
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI


def _claude() -> str | None:
    home = os.environ.get("CHATWIRE_TEST_CLAUDE_CODE")
    if home:
        return str(Path(home) / "node_modules" / ".bin" / "claude")
    return shutil.which("claude")


CLAUDE = _claude()
pytestmark = [
    pytest.mark.skipif(
        CLAUDE is None,
        reason="the Claude Code CLI is not installed: CHATWIRE_TEST_CLAUDE_CODE names the"
        " directory where `npm install --prefix DIR @anthropic-ai/claude-code` was run"
        " (.ci/run does), or `claude` is on the PATH",
    ),
    pytest.mark.asyncio(loop_scope="module"),
]
PROMPT = "Say hello to chatwire"
NOTE = "The note says: chatwire was here."
# Claude Code's names for the translated providers' models (CHATWIRE_MODEL_ALIASES).
TO_MISTRAL = "claude-code-model"
ALIASES = {
    "mistral": (TO_MISTRAL, "mistral/mistral-small-latest"),
    "openai": ("claude-code-openai", "openai/gpt-4o"),
    "gemini": ("claude-code-gemini", "google/gemini-2.5-flash"),
    "ollama": ("claude-code-ollama", "ollama/llama3.2"),
}


@dataclass
class Gateway:
    """The module's chatwire: Anthropic's fake passed through, the others translated."""

    server: Running
    anthropic: FakeAnthropic
    mistral: FakeMistral
    openai: FakeOpenAI
    gemini: FakeGemini
    ollama: FakeOllama

    def fakes(self) -> tuple[FakeServer, ...]:
        return self.anthropic, self.mistral, self.openai, self.gemini, self.ollama


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with (
        FakeAnthropic() as anthropic,
        FakeMistral(api_key=FAKE_KEY) as mistral,
        FakeOpenAI() as openai,
        FakeGemini() as gemini,
        FakeOllama() as ollama,
    ):
        servers = Servers(tmp_path_factory.mktemp("claude-code"), mistral)
        try:
            server = await servers.start(
                anthropic_base_url=anthropic.base_url,
                anthropic_api_key=anthropic.api_key,
                openai_base_url=openai.base_url,
                openai_api_key=str(openai.api_key),
                google_base_url=gemini.base_url,
                google_gemini_api_key=gemini.api_key,
                ollama_base_url=ollama.base_url,
                model_aliases=",".join(f"{name}={model}" for name, model in ALIASES.values()),
            )
            yield Gateway(server, anthropic, mistral, openai, gemini, ollama)
        finally:
            await servers.close()


@pytest.fixture
def gateway(module_gateway: Gateway) -> Iterator[Gateway]:
    """The module's chatwire, its fakes' records this test's own, their tool settings put
    back after it."""
    for fake in module_gateway.fakes():
        fake.requests.clear()
    yield module_gateway
    for fake in module_gateway.fakes():
        fake.calls_tools, fake.tool_arguments = True, None


async def claude(
    gateway: Gateway,
    cwd: Path,
    model: str,
    *,
    prompt: str = PROMPT,
    key_as: str = "ANTHROPIC_AUTH_TOKEN",
    tools: str | None = "",
    json_output: bool = False,
) -> tuple[int, str, str]:
    """``claude -p PROMPT`` at chatwire in ``cwd`` (with only ``tools``, none by default;
    None: all of them), at most three turns: its status, output (its JSON result with
    ``json_output``) and errors."""
    assert CLAUDE is not None
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.server.url,
        key_as: gateway.server.token,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    options = ["--max-turns", "3"] + ([] if tools is None else ["--tools", tools])
    if json_output:
        options += ["--output-format", "json"]
    process = await asyncio.create_subprocess_exec(
        CLAUDE,
        "-p",
        prompt,
        *options,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def said(out: str) -> bool:
    """Whether Claude Code printed the fake's echo of the prompt (after the context Claude
    Code puts before it in the user's turn)."""
    return out.startswith("Hello! You said:") and out.strip().endswith(PROMPT)


def chats(fake: Any) -> list[Any]:
    """The chat requests a fake received, whatever its provider's shape."""
    return [
        r
        for r in fake.requests
        if r.method == "POST"
        and (
            r.path in ("/v1/messages", "/v1/chat/completions", "/api/chat")
            or r.path.endswith(":streamGenerateContent")
        )
    ]


def turns(body: dict[str, Any]) -> str:
    """A chat body's turns as JSON, whatever its provider's shape."""
    return json.dumps(body.get("messages", body.get("contents")), ensure_ascii=False)


async def test_claude_code_through_chatwire_to_anthropic(gateway: Gateway, tmp_path: Path) -> None:
    status, out, err = await claude(gateway, tmp_path, "anthropic/claude-sonnet-4-5")
    assert status == 0, err
    assert said(out)
    [asked, *_] = [r for r in chats(gateway.anthropic) if r.json.get("stream")]
    # What Claude Code sends, reaching Anthropic unchanged but for the model's name.
    assert asked.query == {"beta": "true"}
    assert "anthropic-beta" in asked.headers
    assert asked.headers["anthropic-version"] == "2023-06-01"
    assert asked.json["model"] == "claude-sonnet-4-5"
    assert isinstance(asked.json["system"], list)


async def test_claude_code_with_an_api_key(gateway: Gateway, tmp_path: Path) -> None:
    status, out, err = await claude(
        gateway, tmp_path, "anthropic/claude-sonnet-4-5", key_as="ANTHROPIC_API_KEY"
    )
    assert status == 0, err
    assert said(out)


async def test_claude_code_through_chatwire_to_mistral(gateway: Gateway, tmp_path: Path) -> None:
    before = len(gateway.mistral.usages)
    status, out, err = await claude(gateway, tmp_path, TO_MISTRAL, json_output=True)
    assert status == 0, out + err
    result = json.loads(out)
    assert said(result["result"])
    sent = [r.json for r in chats(gateway.mistral)]
    assert sent
    assert all(body["model"] == "mistral-small-latest" for body in sent)
    assert sent[-1]["messages"][0]["role"] == "system"
    # The usage Claude Code counted (message_start's, then message_delta's, over its
    # requests) is what Mistral reported, which it tells only at the end of each reply.
    reported = gateway.mistral.usages[before:]
    assert result["usage"]["input_tokens"] == sum(u["prompt_tokens"] for u in reported)
    assert result["usage"]["output_tokens"] == sum(u["completion_tokens"] for u in reported)


@pytest.mark.parametrize("family", ["openai", "gemini", "ollama"])
async def test_claude_code_through_chatwire_to_the_other_families(
    gateway: Gateway, tmp_path: Path, family: str
) -> None:
    status, out, err = await claude(gateway, tmp_path, ALIASES[family][0])
    assert status == 0, out + err
    assert said(out)
    sent = [r.json for r in chats(getattr(gateway, family))]
    assert sent
    assert all(PROMPT in turns(body) for body in sent)


async def test_claude_code_s_tool_turns_through_chatwire_to_mistral(
    gateway: Gateway, tmp_path: Path
) -> None:
    """With all its tools, Claude Code's turns of tool results (with its reminders after
    them, and system turns among the messages) reach Mistral in a shape Mistral takes."""
    status, out, err = await claude(gateway, tmp_path, TO_MISTRAL, tools=None)
    assert status == 0, out + err
    assert "API Error" not in out
    assert "The tool said:" in out
    sent = [r.json for r in chats(gateway.mistral)]
    assert any(m["role"] == "tool" for body in sent for m in body["messages"])


# Claude Code (2.1) sends the signed thinking blocks of its turns back only for a model it
# knows by name, Anthropic's own ids: told "anthropic/claude-sonnet-4-5", or an alias of a
# name of its own, it leaves them out, and Anthropic refuses a tool turn with thinking on
# without them. chatwire routes the bare id to Anthropic.
@pytest.mark.parametrize(
    ("family", "model"),
    [("anthropic", "claude-sonnet-4-5")] + [(name, alias) for name, (alias, _) in ALIASES.items()],
)
async def test_claude_code_reads_a_file_the_model_asks_for(
    gateway: Gateway, tmp_path: Path, family: str, model: str
) -> None:
    """The fake asks for Read of a file the test made; Claude Code reads it and sends its
    content back as the tool's result; the fake's answer to it is Claude Code's output."""
    fake: FakeServer = getattr(gateway, family)
    note = tmp_path / "note.txt"
    note.write_text(f"{NOTE}\n")
    fake.tool_arguments = {"file_path": str(note)}
    status, out, err = await claude(gateway, tmp_path, model, prompt="Read the note", tools="Read")
    assert status == 0, out + err
    assert out.startswith("The tool said:")
    assert NOTE in out
    asked, answered = [r.json for r in chats(fake)][-2:]
    assert NOTE not in turns(asked)
    if family == "anthropic":
        last = answered["messages"][-1]
        # Passed through: Claude Code's own tool_result block, after its signed thinking.
        [result, *_] = last["content"]
        assert result["type"] == "tool_result"
        assert NOTE in json.dumps(result["content"])
        turn = answered["messages"][-2]
        assert [block["type"] for block in turn["content"]] == ["thinking", "text", "tool_use"]
        assert turn["content"][0]["signature"]
        assert answered["thinking"]["type"] == "enabled"
    else:
        # Translated: the call and its result in the provider's shape, Claude Code's
        # reminders after them.
        said_back = turns(answered)
        assert NOTE in said_back
        assert '"Read"' in said_back
        assert json.dumps(str(note)) in said_back.replace('\\"', '"')
