"""Codex CLI (``codex exec``) with chatwire as its Responses API provider, against the fakes
of OpenAI, Anthropic, Mistral, Gemini and Ollama (each through translation), over TCP.

Skipped, saying so, where ``CHATWIRE_TEST_CODEX`` is not set; it names the directory where
``npm install @openai/codex`` was run (its ``node_modules/.bin/codex``), and ``.ci/run``
installs it there and sets it. Codex runs with
nothing but chatwire to reach: a provider entry of its config at chatwire's ``/v1`` with
``wire_api = "responses"``, the chatwire token from an environment variable, web search off,
its own home and workspace in the test's temporary directory, and its default read-only
sandbox for the commands it runs.

Codex always offers its tools (``exec_command`` first): a plain prompt is answered with text
because the fake is told not to call tools (``calls_tools``); a tool turn is the fake asking
for ``exec_command`` with the command the test chose (``tool_arguments``), Codex running it
and sending its output back, and the fake answering ``"The tool said: <output>"``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.openai_api._clients import MODELS, Gateway, bodies, gateway, said


def _codex() -> str | None:
    """Codex's command where ``CHATWIRE_TEST_CODEX`` is set (a test fails when it is not
    there), else None."""
    home = os.environ.get("CHATWIRE_TEST_CODEX")
    return str(Path(home) / "node_modules" / ".bin" / "codex") if home else None


CODEX = _codex()
pytestmark = [
    pytest.mark.skipif(
        CODEX is None,
        reason="CHATWIRE_TEST_CODEX is not set: it names the directory where"
        " `npm install --prefix DIR @openai/codex` was run (.ci/run does)",
    ),
    pytest.mark.asyncio(loop_scope="module"),
]
PROMPT = "Say hello to chatwire"
NOTE = "The note says: chatwire was here."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def codex_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    """The module's chatwire, and Codex's home with chatwire as its provider."""
    async with gateway(tmp_path_factory.mktemp("codex")) as wired:
        home = wired.folder / "codex-home"
        home.mkdir()
        (home / "config.toml").write_text(
            "\n".join(
                [
                    'model_provider = "chatwire"',
                    'web_search = "disabled"',
                    "check_for_update_on_startup = false",
                    "[model_providers.chatwire]",
                    'name = "chatwire"',
                    f'base_url = "{wired.server.url}/v1"',
                    'env_key = "CHATWIRE_TOKEN"',
                    'wire_api = "responses"',
                    "",
                ]
            )
        )
        yield wired


@pytest.fixture(params=sorted(MODELS))
def family(request: pytest.FixtureRequest, codex_gateway: Gateway) -> Iterator[str]:
    """Each provider family in turn, its fake's record of requests this test's own; its tool
    settings put back after the test."""
    name: str = request.param
    fake = codex_gateway.fakes[name]
    fake.requests.clear()
    yield name
    fake.calls_tools, fake.tool_arguments = True, None


async def codex(gateway: Gateway, work: Path, model: str, prompt: str) -> tuple[int, str, str]:
    """``codex exec PROMPT`` in ``work``: its status, what it printed and its log."""
    assert CODEX is not None
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work.parent),
        "CODEX_HOME": str(gateway.folder / "codex-home"),
        "CHATWIRE_TOKEN": gateway.server.token,
    }
    process = await asyncio.create_subprocess_exec(
        CODEX,
        "exec",
        "--skip-git-repo-check",
        "--ephemeral",
        "--color",
        "never",
        "--model",
        model,
        prompt,
        cwd=work,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def workspace(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "note.txt").write_text(f"{NOTE}\n")
    return work


async def test_codex_answers_a_prompt(codex_gateway: Gateway, family: str, tmp_path: Path) -> None:
    fake = codex_gateway.fakes[family]
    fake.calls_tools = False
    status, out, err = await codex(codex_gateway, workspace(tmp_path), MODELS[family], PROMPT)
    assert status == 0, err
    # The fake's echo of the user's words: to Anthropic, Codex's context and the prompt are
    # one user turn (consecutive user messages are joined).
    assert out.startswith("Hello! You said:")
    assert out.strip().endswith(PROMPT)
    [sent] = bodies(fake)
    # Codex's instructions and tools arrive in the provider's shape.
    assert '"exec_command"' in json.dumps(sent["tools"])
    assert "You are a coding agent running in the Codex CLI" in json.dumps(sent)
    assert PROMPT in said(sent)


async def test_codex_runs_the_command_the_model_asks_for(
    codex_gateway: Gateway, family: str, tmp_path: Path
) -> None:
    fake = codex_gateway.fakes[family]
    fake.tool_arguments = {"cmd": "cat note.txt"}
    status, out, err = await codex(
        codex_gateway, workspace(tmp_path), MODELS[family], "Read the note"
    )
    assert status == 0, err
    # Codex ran the command and said so in its log; its answer is the fake's reply to the
    # command's output.
    assert "cat note.txt" in err
    assert out.strip().startswith("The tool said:")
    assert NOTE in out
    asked, answered = bodies(fake)
    assert NOTE not in said(asked)
    # The call went back with its output, as a tool result in the provider's shape.
    assert NOTE in said(answered)
    assert '"exec_command"' in said(answered)
