"""``chatwire demo``: a fake Mistral and chatwire wired together, no key and no network."""

from __future__ import annotations

import asyncio
import errno
import json
import shlex
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from types import FrameType

import click
import uvicorn

from chatwire.app import create_app
from chatwire.cli import fail, prepare, with_store
from chatwire.cli.accounts import sign_in_code, sign_in_url
from chatwire.core.config import Settings
from chatwire.demo_upstream import DemoMistral
from chatwire.server import uvicorn_config
from chatwire.store.repo import Store

HOST = "127.0.0.1"
DEMO_KEY = "demo-mistral-key"
DEMO_BODY = (
    '{"chatSettings":{"model":"mistral-small-latest","temperature":0.5},'
    '"messages":[{"role":"system","content":"You are a friendly assistant."},'
    '{"role":"user","content":"Tell me about chatwire"}]}'
)
DEMO_COMPLETION = json.dumps(
    {
        "model": "mistral/mistral-small-latest",
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me about chatwire"}],
    },
    separators=(",", ":"),
)


def _listen(port: int) -> socket.socket:
    """A listening socket on HOST: the port is then known (0 picks one) and held, before the
    banner names it."""
    try:
        return socket.create_server((HOST, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {HOST} is in use; choose another with --port (0: any free one)")
        raise


async def _demo_user(store: Store) -> tuple[str, str]:
    """The demo user's token, and a one-time code that signs a browser in as her."""
    user, token = await store.create_user("demo")
    await store.update_profile(user.id, {"mistral_api_key": DEMO_KEY})
    code = await sign_in_code(store, "demo")
    assert code is not None  # the user was just made
    return token, code


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def banner(url: str, upstream_url: str, token: str, page: str) -> str:
    """What the demo prints once both servers listen: where they are, and ready commands."""
    auth = shlex.quote(f"Authorization: Bearer {token}")
    chat = f"curl -N {url}/api/chat/mistral -H {auth} -d {shlex.quote(DEMO_BODY)}"
    completion = (
        f"curl -N {url}/v1/chat/completions -H {auth} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(DEMO_COMPLETION)}"
    )
    return (
        f"\nchatwire demo: chatwire on {url}, relaying to a fake Mistral on {upstream_url}.\n"
        "User 'demo' has a stored Mistral key. In another terminal, try chatbot-ui's chat "
        "route:\n\n"
        f"{chat}\n\n"
        f"or the OpenAI-compatible API, base URL {url}/v1 with the token as the API key "
        "(any OpenAI client works):\n\n"
        f"{completion}\n\n"
        "or open chatwire's pages in a browser, signed in as 'demo' (this link works once):\n\n"
        f"{page}\n\n"
        "Press Ctrl+C to stop.\n"
    )


def run_demo(port: int) -> None:
    listening, upstream = _listen(port), _listen(0)
    url = f"http://{HOST}:{listening.getsockname()[1]}"
    # The server re-raises the signal that stopped it once it has shut down; with this
    # handler in place, that ends the demo through its cleanup instead of killing it.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    data_dir = Path(tempfile.mkdtemp(prefix="chatwire-demo-"))
    # Explicit values win over the environment, so a real MISTRAL_API_KEY or database
    # in the caller's environment is never touched by the demo.
    settings = Settings(
        data_dir=data_dir,
        database_url=None,
        secret_key=None,
        host=HOST,
        port=listening.getsockname()[1],
        mistral_base_url=f"http://{HOST}:{upstream.getsockname()[1]}/v1",
        mistral_api_key=None,
    )
    try:
        prepare(settings)
        token, code = with_store(settings, _demo_user)
        upstream_url = settings.lookup("CHATWIRE_MISTRAL_BASE_URL") or ""
        click.echo(banner(url, upstream_url, token, sign_in_url(settings, code)), err=True)
        asyncio.run(_serve(settings, listening, upstream))
    finally:
        listening.close()
        upstream.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _serve(settings: Settings, listening: socket.socket, upstream: socket.socket) -> None:
    fake = DemoMistral(DEMO_KEY, first_token_delay=0.3, token_delay=0.08)
    await fake.start(upstream)
    try:
        config = uvicorn.Config(create_app(settings), **uvicorn_config(settings))
        await uvicorn.Server(config).serve(sockets=[listening])
    finally:
        await fake.stop()
