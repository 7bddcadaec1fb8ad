"""The usage ledger's buffer and a real ``chatwire serve``: a graceful stop (SIGTERM) writes
every row still buffered; a SIGKILL loses at most the rows of the chats that ended in the
writer's last interval (CHATWIRE's 250 ms), measured here."""

from __future__ import annotations

import asyncio
import signal
import time

from sqlalchemy import func, select

from chatwire.store.db import make_engine
from chatwire.store.ledger import INTERVAL
from chatwire.store.models import UsageRow
from tests.conftest import FAKE_KEY
from tests.fakes.fake_mistral import FakeMistral
from tests.test_cli import Cli
from tests.test_serve import Launch, Served, banner_token, chat_body, cli, free_port, launch

__all__ = ["cli", "launch"]  # fixtures used here


async def start(cli: Cli, launch: Launch, fake: FakeMistral) -> tuple[Served, str]:
    assert fake.base_url is not None
    port = free_port()
    env = {
        "CHATWIRE_PORT": str(port),
        "CHATWIRE_MISTRAL_BASE_URL": fake.base_url,
        "MISTRAL_API_KEY": FAKE_KEY,
    }
    served = launch(cli, "serve", port=port, env=env)
    await served.wait_ready()
    return served, banner_token(served)


async def rows(cli: Cli) -> int:
    engine = make_engine(f"sqlite+aiosqlite:///{cli.data_dir / 'chatwire.db'}")
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(UsageRow)) or 0)
    finally:
        await engine.dispose()


async def test_a_graceful_stop_writes_every_buffered_row(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    served, token = await start(cli, launch, fake)
    async with served.client(token) as client:
        for _ in range(20):
            resp = await client.post("/api/chat/mistral", json=chat_body("Hello"))
            assert resp.status_code == 200
    served.proc.send_signal(signal.SIGTERM)  # at once: rows still in the buffer
    await asyncio.to_thread(served.proc.wait, 20)
    assert await rows(cli) == 20


async def test_a_sigkill_loses_at_most_the_last_intervals_rows(
    cli: Cli, launch: Launch, fake: FakeMistral
) -> None:
    served, token = await start(cli, launch, fake)
    ended: list[float] = []
    async with served.client(token) as client:

        async def chats() -> None:
            while True:
                resp = await client.post("/api/chat/mistral", json=chat_body("Hello"))
                assert resp.status_code == 200
                ended.append(time.monotonic())

        workers = [asyncio.create_task(chats()) for _ in range(4)]
        await asyncio.sleep(3)
        served.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.gather(*workers, return_exceptions=True)
    await asyncio.to_thread(served.proc.wait, 10)
    done = [t for t in ended if t <= killed]
    kept = await rows(cli)
    lost = len(done) - kept
    recent = sum(1 for t in done if t > killed - INTERVAL)
    # Rows of chats whose reply had not reached the client yet may be written too.
    print(
        f"SIGKILL after {len(done)} chats: {kept} rows kept, {lost} lost ({recent} chats "
        f"ended in the last {INTERVAL * 1000:.0f} ms)"
    )
    assert lost <= recent + 4
    assert kept >= len(done) * 0.5
