"""What the commands share: settings, the store, prompts and failures.

Only click is imported up front (``chatwire --version`` and ``--help`` answer without
loading pydantic, SQLAlchemy, Alembic or the app); each helper imports what it uses.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from chatwire.core.config import Settings
    from chatwire.store.repo import Store

T = TypeVar("T")


def load_settings(**overrides: Any) -> Settings:
    """The settings for a command: the environment, the env file (``chatwire --env-file``,
    else ./.env) and ``overrides``."""
    from chatwire.core.config import Settings

    context = click.get_current_context(silent=True)
    env_file = context.find_root().params.get("env_file") if context is not None else None
    if env_file is not None:
        overrides["_env_file"] = env_file
    return Settings(**overrides)


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    from chatwire.providers.registry import credential_fields
    from chatwire.store.crypto import KeyBox, load_secret_keys
    from chatwire.store.db import make_engine
    from chatwire.store.repo import Store

    engine = make_engine(settings.resolved_database_url, settings.db_timeout)
    try:
        yield Store(engine, KeyBox(load_secret_keys(settings)), credential_fields())
    finally:
        await engine.dispose()


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    import asyncio

    async def go() -> T:
        async with open_store(settings) as store:
            return await action(store)

    return asyncio.run(go())


def prepare(settings: Settings) -> None:
    """Apply migrations (creating the data directory and secret key on first start)."""
    from chatwire.store.crypto import KeyBox, load_secret_keys
    from chatwire.store.db import upgrade

    upgrade(settings.resolved_database_url, KeyBox(load_secret_keys(settings)))


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def read_secret(label: str) -> str:
    if sys.stdin.isatty():
        value: str = click.prompt(label, hide_input=True)
    else:
        value = sys.stdin.readline()
    value = value.strip()
    if not value:
        fail(f"{label}: nothing was entered")
    return value


def announce(settings: Settings, kind: str, subject: Any) -> None:
    """Tell every running server, through Redis (CHATWIRE_REDIS_URL), that ``kind`` /
    ``subject`` changed, so they forget what they cached of it at once; without Redis they
    do within CHATWIRE_CACHE_TTL. When Redis does not answer (said on stderr), servers that
    still hear it keep what they cached for up to CHATWIRE_REDIS_CACHE_TTL."""
    if settings.redis_url is None:
        return
    from chatwire.team.bus import publish_now

    if not publish_now(settings.redis_url.get_secret_value(), settings.redis_prefix, kind, subject):
        click.echo(
            f"Redis did not answer, so running servers were not told: they see this within "
            f"CHATWIRE_REDIS_CACHE_TTL ({settings.redis_cache_ttl:g} s) at most",
            err=True,
        )
