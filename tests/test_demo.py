"""``chatwire demo`` end to end: it prints a curl command that works, streams, and leaves
nothing behind when stopped."""

from __future__ import annotations

import itertools
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import TOKEN, make_cli
from tests.test_serve import Launch, Served, free_port, launcher


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    with launcher(tmp_path) as start:
        yield start


def printed_curl(served: Served) -> tuple[str, dict[str, str], str]:
    """The URL, headers and body of the curl command the demo printed."""
    lines = [line for line in served.stderr().splitlines() if line.startswith("curl ")]
    assert len(lines) == 1, served.stderr()
    words = shlex.split(lines[0])
    urls = [word for word in words if word.startswith("http://")]
    assert len(urls) == 1, lines[0]
    headers: dict[str, str] = {}
    body = ""
    for flag, value in itertools.pairwise(words):
        if flag == "-H":
            name, _, text = value.partition(": ")
            headers[name] = text
        elif flag == "-d":
            body = value
    # curl -d sends a form content type; chatwire reads any body as JSON.
    headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return urls[0], headers, body


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

    url, headers, body = printed_curl(served)
    assert url == f"{served.url}/api/chat/mistral"
    assert TOKEN.fullmatch(headers["Authorization"].removeprefix("Bearer ")), headers
    async with (
        httpx.AsyncClient(timeout=10.0, trust_env=False) as client,
        client.stream("POST", url, headers=headers, content=body) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        chunks = [chunk async for chunk in resp.aiter_raw()]
    text = b"".join(chunks).decode()
    assert text.startswith("Hello"), text
    assert len(chunks) > 1, chunks  # streamed in pieces, not sent whole at the end

    code = await served.stop(signum)
    assert "Shutting down" in served.stderr(), f"exit {code}\n{served.stderr()}"
    assert "Traceback" not in served.stderr(), served.stderr()
    assert "Aborted" not in served.stderr(), served.stderr()
    assert code == 0, served.stderr()
    assert list(temp.iterdir()) == [], "the demo left its data directory behind"
