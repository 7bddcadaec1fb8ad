"""Users, bearer tokens and stored provider keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from chatwire.cli._support import (
    announce,
    fail,
    load_settings,
    prepare,
    read_secret,
    with_store,
)
from chatwire.core.security import mask_secret
from chatwire.store.records import CredentialField

if TYPE_CHECKING:
    from chatwire.core.config import Settings
    from chatwire.store.repo import Store


@click.group()
def users() -> None:
    """Create and list users."""


@users.command("create")
@click.argument("name")
def users_create(name: str) -> None:
    """Create a user; prints its bearer token alone on stdout, once."""
    from chatwire.store.repo import UserExists

    settings = load_settings()
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
    settings = load_settings()
    prepare(settings)
    for user in with_store(settings, lambda s: s.list_users()):
        click.echo(f"{user.id}\t{user.name}")


@users.command("link")
@click.argument("name")
def users_link(name: str) -> None:
    """Print a link that signs a browser in to chatwire's pages as NAME, once, within a day."""
    settings = load_settings()
    prepare(settings)
    code = with_store(settings, lambda s: sign_in_code(s, name))
    if code is None:
        fail(f"no user '{name}' (chatwire users list)")
    click.echo(sign_in_url(settings, code))


LINK_LIFETIME_HOURS = 24


async def sign_in_code(store: Store, name: str) -> str | None:
    """A one-time sign-in code for user ``name`` (None: no such user)."""
    from datetime import timedelta

    from chatwire.store.web import WebStore

    user = await store.get_user(name)
    if user is None:
        return None
    return await WebStore(store.engine).create_session(
        user.id, timedelta(hours=LINK_LIFETIME_HOURS)
    )


def sign_in_url(settings: Settings, code: str) -> str:
    """The page's address with the code in its fragment, which browsers never send on."""
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/#signin={code}"


@click.group()
def tokens() -> None:
    """Create, list and revoke bearer tokens."""


@tokens.command("create")
@click.argument("user")
def tokens_create(user: str) -> None:
    """Create another token for USER; prints it alone on stdout, once."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
    prepare(settings)
    try:
        click.echo(with_store(settings, lambda s: s.create_token(user)))
    except UserNotFound:
        fail(f"no user '{user}': create it with chatwire users create {user}")


@tokens.command("list")
@click.argument("user")
def tokens_list(user: str) -> None:
    """List USER's tokens (ids and dates; tokens themselves are never stored)."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
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
    from chatwire.store.repo import UserNotFound

    if user is not None and token_id is not None:
        raise click.UsageError("give a token id or --user, not both")
    settings = load_settings()
    prepare(settings)
    if user is not None:
        try:
            count = with_store(settings, lambda s: s.revoke_all_tokens(user))
        except UserNotFound:
            fail(f"no user '{user}'")
        announce(settings, "user", user)
        click.echo(f"revoked {count} token(s) of '{user}'", err=True)
        return
    if token_id is not None:
        done = with_store(settings, lambda s: s.revoke_token(token_id))
    else:
        value = read_secret("Token to revoke")
        done = with_store(settings, lambda s: s.revoke_token_value(value))
    if not done:
        fail("no such active token")
    announce(settings, "token", token_id)
    click.echo("revoked", err=True)


@click.group()
def keys() -> None:
    """Set, clear and show a user's stored provider keys."""


def profile_field(provider: str) -> str:
    from chatwire.providers.registry import credential_fields, key_fields

    fields = credential_fields()
    keys = key_fields()
    field = keys.get(provider, provider)
    if field not in fields:
        # Providers by name, then every field no provider name stands for.
        names = ", ".join([*keys, *(f for f in fields if f not in keys.values())])
        fail(f"unknown provider or field '{provider}'; one of: {names}")
    return field


@keys.command("set")
@click.argument("user")
@click.argument("provider")
def keys_set(user: str, provider: str) -> None:
    """Store USER's key for PROVIDER, read from a hidden prompt or stdin (never argv)."""
    settings = load_settings()
    field = profile_field(provider)
    value = read_secret(f"{provider} value for {user}")
    _update_profile(settings, user, field, value)
    click.echo(f"stored {field} for '{user}'", err=True)


@keys.command("clear")
@click.argument("user")
@click.argument("provider")
def keys_clear(user: str, provider: str) -> None:
    """Remove USER's stored key for PROVIDER."""
    settings = load_settings()
    _update_profile(settings, user, profile_field(provider), None)
    click.echo("cleared", err=True)


@keys.command("list")
@click.argument("user")
def keys_list(user: str) -> None:
    """Show USER's stored settings, keys masked."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
    prepare(settings)

    async def read(store: Store) -> tuple[Mapping[str, CredentialField], dict[str, str | None]]:
        found = await store.get_user(user)
        if found is None:
            raise UserNotFound(user)
        return store.fields, (await store.get_profile(found.id)).values

    try:
        fields, values = with_store(settings, read)
    except UserNotFound:
        fail(f"no user '{user}'")
    for name, field in fields.items():
        value = values.get(name)
        shown = mask_secret(value) if field.secret else value
        click.echo(f"{name}\t{shown or '-'}")


def _update_profile(settings: Settings, user: str, field: str, value: str | None) -> None:
    from chatwire.store.repo import UserNotFound

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
    announce(settings, "profile", user)
