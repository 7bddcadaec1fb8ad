"""``chatwire demo``: a fake Mistral and chatwire wired together, no key and no network."""

from __future__ import annotations

import asyncio
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
from chatwire.cli import prepare, with_store
from chatwire.core.config import Settings
from chatwire.server import uvicorn_config
from chatwire.store.repo import Store
from chatwire.testing.fake_mistral import FakeMistral

DEMO_KEY = "demo-mistral-key"
DEMO_BODY = (
    '{"chatSettings":{"model":"mistral-small-latest","temperature":0.5},'
    '"messages":[{"role":"system","content":"You are a friendly assistant."},'
    '{"role":"user","content":"Tell me about chatwire"}]}'
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _demo_user(store: Store) -> str:
    user, token = await store.create_user("demo")
    await store.update_profile(user.id, {"mistral_api_key": DEMO_KEY})
    return token


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_demo(port: int) -> None:
    # The server re-raises the signal that stopped it once it has shut down; with this
    # handler in place, that ends the demo through its cleanup instead of killing it.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    data_dir = Path(tempfile.mkdtemp(prefix="chatwire-demo-"))
    fake_port = _free_port()
    # Explicit values win over the environment, so a real MISTRAL_API_KEY or database
    # in the caller's environment is never touched by the demo.
    settings = Settings(
        data_dir=data_dir,
        database_url=None,
        secret_key=None,
        port=port,
        mistral_base_url=f"http://127.0.0.1:{fake_port}/v1",
        mistral_api_key=None,
    )
    try:
        prepare(settings)
        token = with_store(settings, _demo_user)
        curl = (
            f"curl -N http://127.0.0.1:{port}/api/chat/mistral "
            f"-H {shlex.quote('Authorization: Bearer ' + token)} -d {shlex.quote(DEMO_BODY)}"
        )
        click.echo(
            "\nchatwire demo: a fake Mistral is answering on "
            f"{settings.lookup('CHATWIRE_MISTRAL_BASE_URL')}, chatwire on http://127.0.0.1:{port}.\n"
            "User 'demo' has a stored Mistral key. In another terminal, run:\n\n"
            f"{curl}\n\nPress Ctrl+C to stop.\n",
            err=True,
        )
        asyncio.run(_serve(settings, fake_port))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _serve(settings: Settings, fake_port: int) -> None:
    fake = FakeMistral(api_key=DEMO_KEY, first_token_delay=0.3, token_delay=0.08)
    await fake.start(port=fake_port)
    try:
        config = uvicorn.Config(create_app(settings), **uvicorn_config(settings))
        await uvicorn.Server(config).serve()
    finally:
        await fake.stop()
