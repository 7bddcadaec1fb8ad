"""Database maintenance: apply the migrations."""

from __future__ import annotations

import click

from chatwire.cli._support import load_settings, prepare


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to CHATWIRE_DATABASE_URL."""
    prepare(load_settings())
    click.echo("database is up to date", err=True)
