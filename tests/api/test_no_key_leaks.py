"""A provider key never leaves chatwire except towards its provider: traffic with a known
key (stored, and the operator's from the environment) through every path that reports on an
upstream, including providers that quote the key back in their errors, then every log line
(debug level, access log on, tracebacks formatted) and every response is scanned for it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import FAKE_KEY, Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral
from tests.scripted import END, SSE_HEAD, Pause, ScriptedUpstream, Step, delta, event

LOGGERS = ("", "chatwire", "uvicorn", "uvicorn.error", "uvicorn.access")
QUOTING = f"Invalid request: the key {FAKE_KEY} may not call this model".encode()


@contextmanager
def every_log_line() -> Iterator[list[str]]:
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    handler = Collect(level=logging.DEBUG)
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    try:
        yield lines
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)


SCRIPTS: dict[str, list[Step]] = {
    "400 quoting the key": [
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(b'{"message":"' + QUOTING + b'"}')).encode()
        + b"\r\n\r\n"
        + b'{"message":"'
        + QUOTING
        + b'"}'
    ],
    "500 in plain text quoting the key": [
        b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(QUOTING)).encode()
        + b"\r\n\r\n"
        + QUOTING
    ],
    "error event quoting the key mid-stream": [
        SSE_HEAD,
        delta("Hello"),
        Pause(0.1),
        event(b'{"error":{"message":"' + QUOTING + b'"}}'),
        END,
    ],
}


@pytest.fixture(params=list(SCRIPTS))
async def quoting(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream(SCRIPTS[request.param])
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


async def traffic(server: Running) -> list[bytes]:
    """Each chat API, streamed and not, plus the routes that show keys; every byte back."""
    seen: list[bytes] = []
    requests = [
        ("/api/chat/mistral", server.chat_body()),
        ("/api/chat/mistral", server.chat_body(model="fake-500")),
        ("/api/chat/mistral", server.chat_body(model="fake-drop")),
        (
            "/v1/chat/completions",
            {
                "model": "mistral/mistral-small-latest",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": True,
            },
        ),
        (
            "/v1/chat/completions",
            {
                "model": "mistral/mistral-small-latest",
                "messages": [{"role": "user", "content": "Hi"}],
            },
        ),
        (
            "/v1/chat/completions",
            {
                "model": "mistral/fake-drop",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": True,
            },
        ),
    ]
    for path, body in requests:
        try:
            async with server.client.stream("POST", path, json=body, headers=server.auth) as resp:
                seen.append(str(resp.headers).encode())
                async for piece in resp.aiter_raw():
                    seen.append(piece)
        except httpx.RemoteProtocolError:
            pass  # a reply cut after a failure mid-stream, as it should be
    for path in ("/api/profile", "/api/keys", "/v1/models", "/api/models", "/openapi.json"):
        resp = await server.client.get(path, headers=server.auth)
        seen += [str(resp.headers).encode(), resp.content]
    resp = await server.client.patch(
        "/api/profile", json={"mistral_api_key": FAKE_KEY}, headers=server.auth
    )
    seen.append(resp.content)
    return seen


def assert_nowhere(key: str, lines: list[str], seen: list[bytes]) -> None:
    assert lines, "nothing was logged: the scan would prove nothing"
    leaked = [line for line in lines if key in line]
    assert leaked == []
    assert key.encode() not in b"".join(seen)  # also a key split between two reads


async def test_a_stored_key_is_in_no_log_and_no_response(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    # Each server start configures logging anew: collect once both are up.
    server = await make_server(log_level="debug", access_log=True)
    wrong = await make_server(stored_key="wrong-key-" + FAKE_KEY, log_level="debug")
    with every_log_line() as lines:
        seen = await traffic(server)
        seen += await traffic(wrong)
    assert fake.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"  # it was used
    assert_nowhere(FAKE_KEY, lines, seen)


@pytest.mark.parametrize("operator", [False, True], ids=["stored key", "operator's key"])
async def test_a_provider_quoting_the_key_never_passes_it_on(
    make_server: ServerFactory, quoting: ScriptedUpstream, operator: bool
) -> None:
    settings = {"mistral_base_url": quoting.base_url, "log_level": "debug", "access_log": True}
    if operator:
        settings["mistral_api_key"] = FAKE_KEY
    server = await make_server(stored_key=None if operator else FAKE_KEY, **settings)
    with every_log_line() as lines:
        seen = await traffic(server)
    assert quoting.requests > 0
    assert_nowhere(FAKE_KEY, lines, seen)
    # The provider's message still comes through, without the key.
    assert any(b"Invalid request: the key [redacted] may not call" in chunk for chunk in seen)
