"""Running a fake upstream as a process: serve until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from tests.fakes._server import FakeServer


def serve(make: Callable[[], FakeServer], host: str, port: int) -> None:
    """Start the fake ``make`` builds, print its base URL once listening, stop on a signal."""
    asyncio.run(_serve(make, host, port))


async def _serve(make: Callable[[], FakeServer], host: str, port: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    fake = make()
    print(await fake.start(host, port), flush=True)
    try:
        await stopping.wait()
    finally:
        await fake.stop()
