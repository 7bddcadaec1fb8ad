"""The ``chatwire`` command: serve, manage users, tokens and keys, run the demo.

Each command imports the modules it needs when it runs: ``--version``, ``--help`` and the
commands that need no database do not pay for SQLAlchemy, Alembic or the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatwire import __version__
from chatwire.cli._support import fail, load_settings, open_store, prepare, read_secret, with_store
from chatwire.cli.accounts import (
    LINK_LIFETIME_HOURS,
    keys,
    sign_in_code,
    sign_in_url,
    tokens,
    users,
)
from chatwire.cli.custom import custom_models
from chatwire.cli.database import db
from chatwire.cli.tools import demo
from chatwire.cli.usage import usage

if TYPE_CHECKING:
    from chatwire.store.repo import Store

__all__ = ["fail", "load_settings", "main", "open_store", "prepare", "read_secret", "with_store"]


@click.group()
@click.version_option(__version__, prog_name="chatwire")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read settings from this file instead of ./.env (the environment still wins).",
)
def main(env_file: Path | None) -> None:
    """chatwire: a chat-completion gateway (chatbot-ui chat routes, streaming)."""


@main.command()
@click.option("--host", help="Interface to listen on (CHATWIRE_HOST).")
@click.option("--port", type=int, help="Port to listen on (CHATWIRE_PORT).")
@click.option("--workers", type=int, help="Worker processes (CHATWIRE_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Start the server (applies migrations first)."""
    from chatwire.server import run

    given: dict[str, Any] = {"host": host, "port": port, "workers": workers}
    settings = load_settings(**{k: v for k, v in given.items() if v is not None})
    prepare(settings)
    first = with_store(settings, first_start_user)
    if first is not None:
        token, code = first
        click.echo(
            "\n    No users yet: created user 'local', an admin. Its bearer token (shown once):\n\n"
            f"        {token}\n\n"
            "    Use it as 'Authorization: Bearer <token>'. More: chatwire users create NAME\n"
            "\n    Or open chatwire's pages, signed in as 'local' (this link works once, "
            f"within {LINK_LIFETIME_HOURS} h):\n\n        {sign_in_url(settings, code)}\n",
            err=True,
        )
    run(settings)


async def first_start_user(store: Store) -> tuple[str, str] | None:
    """On a first start, user 'local': its bearer token and a one-time sign-in code."""
    if await store.count_users():
        return None
    _, token = await store.create_user("local")
    code = await sign_in_code(store, "local")
    assert code is not None
    return token, code


main.add_command(db)
main.add_command(users)
main.add_command(tokens)
main.add_command(keys)
main.add_command(custom_models)
main.add_command(demo)
main.add_command(usage)
