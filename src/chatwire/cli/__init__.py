"""The ``chatwire`` command: serve, manage users, tokens and keys, run the demo."""

from __future__ import annotations

from typing import Any

import click

from chatwire import __version__
from chatwire.cli._support import fail, open_store, prepare, read_secret, with_store
from chatwire.cli.accounts import keys, tokens, users
from chatwire.cli.custom import custom_models
from chatwire.cli.tools import demo
from chatwire.core.config import Settings
from chatwire.store.repo import Store

__all__ = ["fail", "main", "open_store", "prepare", "read_secret", "with_store"]


@click.group()
@click.version_option(__version__, prog_name="chatwire")
def main() -> None:
    """chatwire: a chat-completion gateway (chatbot-ui chat routes, streaming)."""


@main.command()
@click.option("--host", help="Interface to listen on (CHATWIRE_HOST).")
@click.option("--port", type=int, help="Port to listen on (CHATWIRE_PORT).")
@click.option("--workers", type=int, help="Worker processes (CHATWIRE_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Start the server (applies migrations first)."""
    from chatwire.server import run

    given: dict[str, Any] = {"host": host, "port": port, "workers": workers}
    overrides = {k: v for k, v in given.items() if v is not None}
    settings = Settings(**overrides)
    prepare(settings)
    first = with_store(settings, first_start_user)
    if first is not None:
        click.echo(
            "\n    No users yet: created user 'local'. Its bearer token (shown once):\n\n"
            f"        {first}\n\n"
            "    Use it as 'Authorization: Bearer <token>'. More: chatwire users create NAME\n",
            err=True,
        )
    run(settings)


async def first_start_user(store: Store) -> str | None:
    if await store.count_users():
        return None
    _, token = await store.create_user("local")
    return token


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to CHATWIRE_DATABASE_URL."""
    prepare(Settings())
    click.echo("database is up to date", err=True)


main.add_command(users)
main.add_command(tokens)
main.add_command(keys)
main.add_command(custom_models)
main.add_command(demo)
