"""Stored Responses API replies are the database's, not a process's: two ``chatwire serve``
processes on one PostgreSQL database, a response stored through one continued through the
other, and another user's id a 404 there too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest

from chatwire.cli import open_store, prepare
from chatwire.core.config import Settings
from tests.conftest import FAKE_KEY
from tests.fakes.fake_mistral import FakeMistral
from tests.store.conftest import POSTGRES_SERVER, create_postgres_database, drop_postgres_database
from tests.test_cli import Cli, make_cli
from tests.test_serve import Launch, free_port, launcher

pytestmark = pytest.mark.postgres
MODEL = "mistral/mistral-small-latest"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    name = await create_postgres_database()
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        await drop_postgres_database(name)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    with launcher(tmp_path) as start:
        yield start


def sdk(url: str, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)


async def test_two_processes_share_the_stored_responses(
    cli: Cli, launch: Launch, fake: FakeMistral, postgres_url: str
) -> None:
    assert fake.base_url is not None
    settings = Settings(data_dir=cli.data_dir, database_url=postgres_url, secret_key=None)
    prepare(settings)
    async with open_store(settings) as store:
        _, alice = await store.create_user("alice")
        _, bob = await store.create_user("bob")
    env = {
        "CHATWIRE_DATABASE_URL": postgres_url,
        "CHATWIRE_MISTRAL_BASE_URL": fake.base_url,
        "MISTRAL_API_KEY": FAKE_KEY,
    }
    ports = [free_port(), free_port()]
    one, two = (launch(cli, "serve", "--port", str(port), port=port, env=env) for port in ports)
    await one.wait_ready()
    await two.wait_ready()

    async with sdk(one.url, alice) as client:
        first = await client.responses.create(model=MODEL, input="My name is Ada")
    async with sdk(two.url, alice) as client:
        second = await client.responses.create(
            model=MODEL, input="What is my name?", previous_response_id=first.id
        )
        assert (await client.responses.retrieve(first.id)).output_text == first.output_text
    assert fake.requests[-1].json["messages"] == [
        {"role": "user", "content": "My name is Ada"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.status == "completed"

    asked = len(fake.requests)
    async with sdk(two.url, bob) as client:
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(
                model=MODEL, input="And mine?", previous_response_id=first.id
            )
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(second.id)
    assert len(fake.requests) == asked
