"""A fleet as a team runs one: three ``chatwire serve`` processes on one PostgreSQL database
and one Redis, behind HAProxy (Debian's ``haproxy``), all over TCP on 127.0.0.1.

The Redis is the fleet's own (``redis-server`` on a port of its own), so a test may stop it
mid-run and start it again; the shared one on 6379 is never touched. Every process it starts
is killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest

from chatwire.cli import open_store, prepare
from chatwire.core.config import Settings
from tests.conftest import FAKE_KEY
from tests.fakes.fake_mistral import FakeMistral
from tests.redis_server import OwnRedis
from tests.store.conftest import POSTGRES_SERVER, create_postgres_database, drop_postgres_database
from tests.test_cli import Cli, InProcess, make_cli
from tests.test_serve import Launch, Served, free_port, launcher

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NO_HAPROXY = not os.access(HAPROXY, os.X_OK)
PROCESSES = 3

FLEET = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        NO_HAPROXY, reason="needs Debian's haproxy (apt-get install haproxy; .ci/run installs it)"
    ),
]


def spawn(argv: list[str], log: IO[bytes] | None) -> subprocess.Popen[bytes]:
    """A process of the fleet's, in a session of its own (so killing it kills it whole)."""
    return subprocess.Popen(  # noqa: S603 (fixed commands of our own)
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
        start_new_session=True,
    )


async def _wait_for_port(port: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    ends = loop.time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > ends:
                raise TimeoutError(f"nothing listens on port {port} after {within} s") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


@dataclass
class Fleet:
    url: str  # the load balancer's
    processes: list[Served]
    redis: OwnRedis
    database_url: str
    settings: Settings  # what the CLI and the tests use to reach the same database
    cli: Cli
    tokens: dict[str, str] = field(default_factory=dict)  # user name -> token

    @property
    def command(self) -> InProcess:
        """``chatwire ...`` run as an operator would, against the fleet's database and Redis."""
        env = {
            **self.cli.env,
            "CHATWIRE_DATABASE_URL": self.database_url,
            "CHATWIRE_REDIS_URL": self.redis.url,
        }
        return InProcess(data_dir=self.cli.data_dir, cwd=self.cli.cwd, env=env)

    def client(self, user: str = "alice", **options: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=30,
            **options,  # type: ignore[arg-type]
        )


HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-server-close
frontend fleet
    bind 127.0.0.1:{port}
    default_backend chatwire
    # Which process answered, for the tests.
    http-response set-header X-Fleet-Server %s
backend chatwire
    balance roundrobin
{servers}
"""


@contextlib.asynccontextmanager
async def running_fleet(
    folder: Path,
    fake: FakeMistral,
    *,
    routes: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Fleet]:
    """A fleet of its own database, Redis, processes and balancer, in front of ``fake``;
    ``routes``: the routes file's TOML (``CHATWIRE_ROUTES_FILE``), ``env``: more settings
    for every process. Everything it started is stopped, and the database dropped, at the
    end."""
    assert fake.base_url is not None
    name = await create_postgres_database()
    database = f"{POSTGRES_SERVER}/{name}"
    try:
        with launcher(folder) as launch:
            async with _started(folder, fake.base_url, database, launch, routes, env) as fleet:
                yield fleet
    finally:
        await drop_postgres_database(name)


@contextlib.asynccontextmanager
async def _started(
    folder: Path,
    upstream: str,
    database: str,
    launch: Launch,
    routes: str | None,
    more: Mapping[str, str] | None,
) -> AsyncIterator[Fleet]:
    cli = make_cli(folder)
    settings = Settings(data_dir=cli.data_dir, database_url=database, secret_key=None)
    prepare(settings)
    tokens = {}
    async with open_store(settings) as store:
        for user in ("alice", "bob"):
            _, tokens[user] = await store.create_user(user)
    redis = OwnRedis(folder)
    await redis.start()
    env = {
        "CHATWIRE_DATABASE_URL": database,
        "CHATWIRE_REDIS_URL": redis.url,
        "CHATWIRE_MISTRAL_BASE_URL": upstream,
        "MISTRAL_API_KEY": FAKE_KEY,
    }
    if routes is not None:
        path = folder / "routes.toml"
        path.write_text(routes)
        env["CHATWIRE_ROUTES_FILE"] = str(path)
    env.update(more or {})
    balancer: subprocess.Popen[bytes] | None = None
    try:
        ports = [free_port() for _ in range(PROCESSES)]
        processes = [
            launch(cli, "serve", "--port", str(port), port=port, env=env) for port in ports
        ]
        for served in processes:
            await served.wait_ready()
        front = free_port()
        config = folder / "haproxy.cfg"
        config.write_text(
            HAPROXY_CONFIG.format(
                port=front,
                servers="\n".join(
                    f"    server chatwire{n} 127.0.0.1:{port}" for n, port in enumerate(ports)
                ),
            )
        )
        with (folder / "haproxy.log").open("wb") as log:
            balancer = spawn([HAPROXY, "-db", "-f", str(config)], log)
        await _wait_for_port(front, 10)
        yield Fleet(f"http://127.0.0.1:{front}", processes, redis, database, settings, cli, tokens)
    finally:
        if balancer is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(balancer.pid, signal.SIGKILL)
            balancer.wait(10)
        await redis.stop()


@pytest.fixture
async def fleet(tmp_path: Path, fake: FakeMistral) -> AsyncIterator[Fleet]:
    """A fleet of the shipped settings (and no routes) for one test."""
    async with running_fleet(tmp_path, fake) as started:
        yield started
