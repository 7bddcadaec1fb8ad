"""The Vercel AI SDK (``ai`` 5 with ``@ai-sdk/openai`` 2) at chatwire over TCP: its default
``openai(model)`` speaks the Responses API. ``vercel_ai_sdk.cjs`` beside this file runs
``generateText``, ``streamText`` and a tool round trip (``generateText`` with a tool the SDK
runs, then its result sent back), once per provider family: the fakes of OpenAI, Anthropic,
Mistral, Gemini and Ollama behind one chatwire.

Skipped, saying so, where ``CHATWIRE_TEST_AI_SDK`` is not set; it names the directory where
``npm install ai@5 @ai-sdk/openai@2`` was run, and ``.ci/run`` installs them there and sets
it. Node itself must be on the PATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.fakes._text import split_pieces
from tests.openai_api._clients import MODELS, Gateway, bodies, gateway, said

SDK = os.environ.get("CHATWIRE_TEST_AI_SDK")
SCRIPT = Path(__file__).with_name("vercel_ai_sdk.cjs")
pytestmark = [
    pytest.mark.skipif(
        SDK is None,
        reason="CHATWIRE_TEST_AI_SDK is not set: it names the directory where"
        " `npm install --prefix DIR ai@5 @ai-sdk/openai@2` was run (.ci/run does)",
    ),
    pytest.mark.asyncio(loop_scope="module"),
]
FORECAST = "sunny, 21 degrees"

Results = Callable[[str], Awaitable[dict[str, Any]]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sdk_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with gateway(tmp_path_factory.mktemp("ai-sdk")) as wired:
        yield wired


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def results(sdk_gateway: Gateway) -> Results:
    """What the script's cases got with a family's model: run once per family, when a test
    first asks."""
    done: dict[str, dict[str, Any]] = {}

    async def of(family: str) -> dict[str, Any]:
        if family not in done:
            done[family] = await run_script(sdk_gateway, MODELS[family])
        return done[family]

    return of


async def run_script(wired: Gateway, model: str) -> dict[str, Any]:
    assert SDK is not None
    node = shutil.which("node")
    assert node is not None, "node is not on the PATH"
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        SDK,
        f"{wired.server.url}/v1",
        model,
        env={"PATH": os.environ.get("PATH", ""), "CHATWIRE_TOKEN": wired.server.token},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    found: dict[str, Any] = json.loads(out)
    return found


def succeeded(result: dict[str, Any]) -> dict[str, Any]:
    assert "error" not in result, result["error"]
    return result


@pytest.mark.parametrize("family", sorted(MODELS))
async def test_generate_text(sdk_gateway: Gateway, results: Results, family: str) -> None:
    got = succeeded((await results(family))["generated"])
    reply = "Hello! You said: Say hello from generateText"
    assert got["text"] == reply
    assert got["finishReason"] == "stop"
    # The fake's own counts: one output token a piece.
    assert got["usage"]["outputTokens"] == len(split_pieces(reply))
    assert got["usage"]["inputTokens"] > 0
    assert len(bodies(sdk_gateway.fakes[family], "from generateText")) == 1


@pytest.mark.parametrize("family", sorted(MODELS))
async def test_stream_text_grows(sdk_gateway: Gateway, results: Results, family: str) -> None:
    got = succeeded((await results(family))["streamed"])
    reply = "Hello! You said: Say hello from streamText"
    assert got["chunks"] == split_pieces(reply)
    assert got["text"] == reply
    assert got["usage"]["outputTokens"] == len(split_pieces(reply))
    assert len(bodies(sdk_gateway.fakes[family], "from streamText")) == 1


@pytest.mark.parametrize("family", sorted(MODELS))
async def test_a_tool_round_trip(sdk_gateway: Gateway, results: Results, family: str) -> None:
    got = succeeded((await results(family))["toolRoundTrip"])
    # The fake called the tool with the user's words; the SDK ran it and sent its result.
    assert got["calls"] == [{"city": "Lyon"}]
    first, second = got["steps"]
    assert first["finishReason"] == "tool-calls"
    assert first["toolCalls"] == [{"name": "get_weather", "input": {"city": "Lyon"}}]
    assert second["finishReason"] == "stop"
    # The fake's answer to the tool's result (as JSON: Gemini takes it as an object).
    assert got["text"].startswith("The tool said: ")
    result = json.loads(got["text"].removeprefix("The tool said: "))
    assert result == {"city": "Lyon", "forecast": FORECAST}
    asked, answered = bodies(sdk_gateway.fakes[family], "Lyon")
    assert FORECAST not in said(asked)
    assert FORECAST in said(answered)
    assert "get_weather" in said(answered)
