"""Database maintenance: apply the migrations, and write a new one."""

from __future__ import annotations

import contextlib
import sys

import click

from chatwire.cli._support import fail, load_settings, prepare


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to CHATWIRE_DATABASE_URL."""
    prepare(load_settings())
    click.echo("database is up to date", err=True)


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.option(
    "--autogenerate",
    is_flag=True,
    help="Fill it with what the models have that the database (migrated first) does not.",
)
def db_revision(message: str, autogenerate: bool) -> None:
    """Write a new migration into src/chatwire/migrations/versions; prints its path."""
    from alembic.util import CommandError

    from chatwire.store.db import new_revision

    settings = load_settings()
    if autogenerate:
        prepare(settings)  # compared against the schema as the migrations so far make it
    try:
        # Alembic reports its progress on stdout: stdout is for the path alone.
        with contextlib.redirect_stdout(sys.stderr):
            path = new_revision(settings.resolved_database_url, message, autogenerate=autogenerate)
    except CommandError as exc:
        fail(str(exc))
    click.echo(path)
