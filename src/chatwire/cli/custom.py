"""A user's custom models (their own OpenAI-compatible servers) for the custom route."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from chatwire.cli._support import announce, fail, load_settings, prepare, read_secret, with_store
from chatwire.core.security import mask_secret

if TYPE_CHECKING:
    from chatwire.store.records import CustomModel
    from chatwire.store.repo import Store


async def _user_id(store: Store, user: str) -> int:
    from chatwire.store.repo import UserNotFound

    found = await store.get_user(user)
    if found is None:
        raise UserNotFound(user)
    return found.id


@click.group("custom-models")
def custom_models() -> None:
    """Add, list and remove a user's custom models."""


@custom_models.command("add")
@click.argument("user")
@click.argument("name")
@click.option("--model-id", required=True, help="The model id the server expects.")
@click.option("--base-url", required=True, help="The server's OpenAI-compatible API base.")
@click.option("--context-length", type=int, default=4096, show_default=True)
@click.option("--description", default="")
@click.option("--no-key", is_flag=True, help="The server needs no API key.")
def add(
    user: str,
    name: str,
    model_id: str,
    base_url: str,
    context_length: int,
    description: str,
    no_key: bool,
) -> None:
    """Add a custom model; its API key is read from a hidden prompt or stdin (never argv).
    Prints the new model's id, to send as customModelId."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
    prepare(settings)
    api_key = "" if no_key else read_secret(f"API key for {name}")

    async def create(store: Store) -> CustomModel:
        return await store.create_custom_model(
            await _user_id(store, user),
            name=name,
            model_id=model_id,
            base_url=base_url,
            api_key=api_key,
            context_length=context_length,
            description=description,
        )

    try:
        record = with_store(settings, create)
    except UserNotFound:
        fail(f"no user '{user}'")
    except ValueError as exc:
        fail(str(exc))
    announce(settings, "custom_models", None)
    click.echo(record.id)


@custom_models.command("list")
@click.argument("user")
def list_models(user: str) -> None:
    """List USER's custom models (keys masked)."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
    prepare(settings)

    async def read(store: Store) -> list[CustomModel]:
        return await store.list_custom_models(await _user_id(store, user))

    try:
        records = with_store(settings, read)
    except UserNotFound:
        fail(f"no user '{user}'")
    for r in records:
        key = mask_secret(r.api_key) or "-"
        click.echo(f"{r.id}\t{r.name}\t{r.model_id}\t{r.base_url}\t{r.context_length}\t{key}")


@custom_models.command("remove")
@click.argument("user")
@click.argument("model", type=int)
def remove(user: str, model: int) -> None:
    """Remove USER's custom model with id MODEL."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
    prepare(settings)

    async def delete(store: Store) -> bool:
        return await store.delete_custom_model(await _user_id(store, user), model)

    try:
        done = with_store(settings, delete)
    except UserNotFound:
        fail(f"no user '{user}'")
    if not done:
        fail(f"'{user}' has no custom model {model}")
    announce(settings, "custom_models", None)
    click.echo("removed", err=True)
