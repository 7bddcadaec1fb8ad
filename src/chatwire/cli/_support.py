"""What the commands share: settings, the store, prompts and failures."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import NoReturn, TypeVar

import click

from chatwire.core.config import Settings
from chatwire.providers.registry import credential_fields
from chatwire.store.crypto import KeyBox, load_secret_keys
from chatwire.store.db import make_engine, upgrade
from chatwire.store.repo import Store

T = TypeVar("T")


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    engine = make_engine(settings.resolved_database_url)
    try:
        yield Store(engine, KeyBox(load_secret_keys(settings)), credential_fields())
    finally:
        await engine.dispose()


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_store(settings) as store:
            return await action(store)

    return asyncio.run(go())


def prepare(settings: Settings) -> None:
    """Apply migrations (creating the data directory and secret key on first start)."""
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
