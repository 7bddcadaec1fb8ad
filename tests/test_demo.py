"""``chatwire demo`` end to end: it prints a curl command for each API that works, streams,
names the ports it really listens on, and leaves nothing behind when stopped."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shlex
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner

from chatwire.cli import main
from tests.test_cli import TOKEN, make_cli
from tests.test_serve import READY_WITHIN, Launch, Served, free_port, launcher

READY = "Press Ctrl+C to stop."


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    with launcher(tmp_path) as start:
        yield start


def printed_curl(served: Served, path: str) -> tuple[str, dict[str, str], str]:
    """The URL, headers and body of the curl command the demo printed for ``path``."""
    lines = [line for line in served.stderr().splitlines() if line.startswith("curl ")]
    assert len(lines) == 2, served.stderr()  # one per API
    found = [line for line in lines if f"{path} " in line]
    assert len(found) == 1, served.stderr()
    words = shlex.split(found[0])
    urls = [word for word in words if word.startswith("http://")]
    assert len(urls) == 1, found[0]
    headers: dict[str, str] = {}
    body = ""
    for flag, value in itertools.pairwise(words):
        if flag == "-H":
            name, _, text = value.partition(": ")
            headers[name] = text
        elif flag == "-d":
            body = value
    # curl -d sends a form content type unless told; chatwire reads any body as JSON.
    headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return urls[0], headers, body


async def banner_of(served: Served) -> str:
    """The demo's banner, once it is printed (both servers then listen)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WITHIN
    while READY not in served.stderr():
        if served.proc.poll() is not None or loop.time() > deadline:
            pytest.fail(f"no demo banner (exit {served.proc.returncode}):\n{served.stderr()}")
        await asyncio.sleep(0.05)
    return served.stderr()


async def chatbot_ui_chat(served: Served) -> list[bytes]:
    url, headers, body = printed_curl(served, "/api/chat/mistral")
    assert url == f"{served.url}/api/chat/mistral"
    assert TOKEN.fullmatch(headers["Authorization"].removeprefix("Bearer ")), headers
    async with (
        httpx.AsyncClient(timeout=10.0, trust_env=False) as client,
        client.stream("POST", url, headers=headers, content=body) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        return [chunk async for chunk in resp.aiter_raw()]


async def v1_chat(served: Served) -> list[bytes]:
    url, headers, body = printed_curl(served, "/v1/chat/completions")
    assert url == f"{served.url}/v1/chat/completions"
    assert headers["Content-Type"] == "application/json"
    async with (
        httpx.AsyncClient(timeout=10.0, trust_env=False) as client,
        client.stream("POST", url, headers=headers, content=body) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [chunk async for chunk in resp.aiter_raw()]


async def sdk_chat(served: Served) -> str | None:
    """What the banner says of /v1: its base URL and the token as the key, for any client."""
    token = TOKEN.search(served.stderr())
    assert token is not None
    assert f"base URL {served.url}/v1 " in served.stderr(), served.stderr()
    async with openai.AsyncOpenAI(
        base_url=f"{served.url}/v1", api_key=token.group(0), max_retries=0
    ) as client:
        completion = await client.chat.completions.create(
            model="mistral/mistral-small-latest",
            messages=[{"role": "user", "content": "Hi there"}],
        )
    return completion.choices[0].message.content


def sse_text(raw: bytes) -> str:
    events = [event.removeprefix(b"data: ") for event in raw.split(b"\n\n") if event]
    assert events[-1] == b"[DONE]", raw
    chunks = [json.loads(event) for event in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.mark.parametrize(
    "signum",
    [
        pytest.param(signal.SIGINT, id="SIGINT"),
        pytest.param(signal.SIGTERM, id="SIGTERM"),
    ],
)
async def test_demo_prints_a_curl_command_that_streams(
    tmp_path: Path, launch: Launch, signum: signal.Signals
) -> None:
    temp = tmp_path / "tmp"  # where the demo's temporary data directory goes
    temp.mkdir()
    port = free_port()
    served = launch(
        make_cli(tmp_path), "demo", "--port", str(port), port=port, env={"TMPDIR": str(temp)}
    )
    await served.wait_ready()
    assert len(list(temp.glob("chatwire-demo-*"))) == 1

    chunks, events, reply = await asyncio.gather(
        chatbot_ui_chat(served), v1_chat(served), sdk_chat(served)
    )
    text = b"".join(chunks).decode()
    assert text.startswith("Hello"), text
    assert len(chunks) > 1, chunks  # streamed in pieces, not sent whole at the end
    assert sse_text(b"".join(events)).startswith("Hello"), events
    assert len(events) > 1, events
    assert reply is not None
    assert reply.startswith("Hello"), reply
    assert reply.endswith("You said: Hi there"), reply

    code = await served.stop(signum)
    assert "Shutting down" in served.stderr(), f"exit {code}\n{served.stderr()}"
    assert "Traceback" not in served.stderr(), served.stderr()
    assert "Aborted" not in served.stderr(), served.stderr()
    assert code == 0, served.stderr()
    assert list(temp.iterdir()) == [], "the demo left its data directory behind"


async def test_demo_on_port_0_names_the_ports_it_listens_on(tmp_path: Path, launch: Launch) -> None:
    served = launch(make_cli(tmp_path), "demo", "--port", "0", port=0)
    banner = await banner_of(served)
    found = re.search(
        r"chatwire on (http://127\.0\.0\.1:(\d+)), .* fake Mistral on (\S+)\.", banner
    )
    assert found is not None, banner
    url, port, upstream = found.group(1), int(found.group(2)), found.group(3)
    assert port != 0
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", upstream), banner
    assert upstream != f"{url}/v1"
    assert f"{url}/api/chat/mistral " in banner
    assert f"{url}/v1/chat/completions " in banner
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        assert (await client.get(f"{url}/healthz")).status_code == 200
        # The fake answers where the banner says, and wants the demo user's key.
        assert (await client.get(f"{upstream}/models")).status_code == 401
    assert await served.stop() == 0, served.stderr()


def test_demo_on_a_busy_port_says_so() -> None:
    # In this process: the port is checked before anything is started or written.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["demo", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"port {port} on 127.0.0.1 is in use" in result.output, result.output
