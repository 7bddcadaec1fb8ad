"""The ``chatwire`` command: serve, manage users, tokens and keys, run the fake and the demo."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import click

from chatwire import __version__
from chatwire.core.config import Settings
from chatwire.core.security import mask_secret
from chatwire.store.crypto import KeyBox, load_secret_keys
from chatwire.store.db import make_engine, upgrade
from chatwire.store.records import PROFILE_TEXT_FIELDS, SECRET_FIELDS
from chatwire.store.repo import Store, UserExists, UserNotFound

T = TypeVar("T")

# Provider names accepted by `chatwire keys`, with the profile field each one sets.
KEY_FIELDS: dict[str, str] = {
    "openai": "openai_api_key",
    "azure": "azure_openai_api_key",
    "anthropic": "anthropic_api_key",
    "google": "google_gemini_api_key",
    "mistral": "mistral_api_key",
    "groq": "groq_api_key",
    "perplexity": "perplexity_api_key",
    "openrouter": "openrouter_api_key",
}


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    engine = make_engine(settings.resolved_database_url)
    try:
        yield Store(engine, KeyBox(load_secret_keys(settings)))
    finally:
        await engine.dispose()


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_store(settings) as store:
            return await action(store)

    return asyncio.run(go())


def prepare(settings: Settings) -> None:
    """Apply migrations (creating the data directory and secret key on first start)."""
    load_secret_keys(settings)
    upgrade(settings.resolved_database_url)


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


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


@main.group()
def users() -> None:
    """Create and list users."""


@users.command("create")
@click.argument("name")
def users_create(name: str) -> None:
    """Create a user; prints its bearer token alone on stdout, once."""
    settings = Settings()
    prepare(settings)
    try:
        _, token = with_store(settings, lambda s: s.create_user(name))
    except UserExists:
        fail(f"user '{name}' exists already; for another token: chatwire tokens create {name}")
    except ValueError as exc:
        fail(str(exc))
    else:
        click.echo(token)


@users.command("list")
def users_list() -> None:
    """List users."""
    settings = Settings()
    prepare(settings)
    for user in with_store(settings, lambda s: s.list_users()):
        click.echo(f"{user.id}\t{user.name}")


@main.group()
def tokens() -> None:
    """Create, list and revoke bearer tokens."""


@tokens.command("create")
@click.argument("user")
def tokens_create(user: str) -> None:
    """Create another token for USER; prints it alone on stdout, once."""
    settings = Settings()
    prepare(settings)
    try:
        click.echo(with_store(settings, lambda s: s.create_token(user)))
    except UserNotFound:
        fail(f"no user '{user}': create it with chatwire users create {user}")


@tokens.command("list")
@click.argument("user")
def tokens_list(user: str) -> None:
    """List USER's tokens (ids and dates; tokens themselves are never stored)."""
    settings = Settings()
    prepare(settings)
    try:
        records = with_store(settings, lambda s: s.list_tokens(user))
    except UserNotFound:
        fail(f"no user '{user}'")
    for record in records:
        state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
        click.echo(f"{record.id}\t{record.created_at:%Y-%m-%d %H:%M}\t{state}")


@tokens.command("revoke")
@click.argument("token_id", type=int, required=False)
@click.option("--user", "user", help="Revoke every token of this user.")
def tokens_revoke(token_id: int | None, user: str | None) -> None:
    """Revoke a token by id (see 'tokens list'), all of a user's tokens with --user,
    or, with neither, the token read from standard input (never from the command line)."""
    settings = Settings()
    prepare(settings)
    if user is not None:
        try:
            count = with_store(settings, lambda s: s.revoke_all_tokens(user))
        except UserNotFound:
            fail(f"no user '{user}'")
        click.echo(f"revoked {count} token(s) of '{user}'", err=True)
        return
    if token_id is not None:
        done = with_store(settings, lambda s: s.revoke_token(token_id))
    else:
        value = read_secret("Token to revoke")
        done = with_store(settings, lambda s: s.revoke_token_value(value))
    if not done:
        fail("no such active token")
    click.echo("revoked", err=True)


@main.group()
def keys() -> None:
    """Set, clear and show a user's stored provider keys."""


def profile_field(provider: str) -> str:
    field = KEY_FIELDS.get(provider, provider)
    if field not in PROFILE_TEXT_FIELDS:
        names = ", ".join(
            [*KEY_FIELDS, *(f for f in PROFILE_TEXT_FIELDS if f not in SECRET_FIELDS)]
        )
        fail(f"unknown provider or field '{provider}'; one of: {names}")
    return field


def read_secret(label: str) -> str:
    if sys.stdin.isatty():
        value: str = click.prompt(label, hide_input=True)
    else:
        value = sys.stdin.readline()
    value = value.strip()
    if not value:
        fail(f"{label}: nothing was entered")
    return value


@keys.command("set")
@click.argument("user")
@click.argument("provider")
def keys_set(user: str, provider: str) -> None:
    """Store USER's key for PROVIDER, read from a hidden prompt or stdin (never argv)."""
    settings = Settings()
    field = profile_field(provider)
    value = read_secret(f"{provider} value for {user}")
    _update_profile(settings, user, field, value)
    click.echo(f"stored {field} for '{user}'", err=True)


@keys.command("clear")
@click.argument("user")
@click.argument("provider")
def keys_clear(user: str, provider: str) -> None:
    """Remove USER's stored key for PROVIDER."""
    settings = Settings()
    _update_profile(settings, user, profile_field(provider), None)
    click.echo("cleared", err=True)


@keys.command("list")
@click.argument("user")
def keys_list(user: str) -> None:
    """Show USER's stored settings, keys masked."""
    settings = Settings()
    prepare(settings)

    async def read(store: Store) -> dict[str, str | None]:
        found = await store.get_user(user)
        if found is None:
            raise UserNotFound(user)
        return (await store.get_profile(found.id)).values

    try:
        values = with_store(settings, read)
    except UserNotFound:
        fail(f"no user '{user}'")
    for name in PROFILE_TEXT_FIELDS:
        value = values.get(name)
        shown = mask_secret(value) if name in SECRET_FIELDS else value
        click.echo(f"{name}\t{shown or '-'}")


def _update_profile(settings: Settings, user: str, field: str, value: str | None) -> None:
    prepare(settings)

    async def update(store: Store) -> None:
        found = await store.get_user(user)
        if found is None:
            raise UserNotFound(user)
        await store.update_profile(found.id, {field: value})

    try:
        with_store(settings, update)
    except UserNotFound:
        fail(f"no user '{user}'")
    except ValueError as exc:
        fail(str(exc))


@main.command("fake-upstream")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=18080, show_default=True)
@click.option("--api-key", default="fake-mistral-key", show_default=True)
@click.option("--first-token-delay", type=float, default=0.0, show_default=True)
@click.option("--token-delay", type=float, default=0.0, show_default=True)
def fake_upstream(
    host: str, port: int, api_key: str, first_token_delay: float, token_delay: float
) -> None:
    """Run the fake Mistral upstream (for tests, demos and benchmarks)."""
    from chatwire.testing import fake_mistral

    fake_mistral.run(
        host,
        port,
        api_key=api_key,
        first_token_delay=first_token_delay,
        token_delay=token_delay,
    )


@main.command()
@click.option("--port", type=int, default=8000, show_default=True)
def demo(port: int) -> None:
    """Start a fake Mistral and chatwire wired together, with a demo user and key."""
    from chatwire.demo import run_demo

    run_demo(port)
