"""Three processes behind a load balancer behave as one gateway."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.fleet.conftest import FLEET, PROCESSES, Fleet

pytestmark = FLEET

BODY = {
    "model": "mistral/mistral-small-latest",
    "messages": [{"role": "user", "content": "Hello"}],
    "stream": True,
}


async def test_every_process_serves_the_fleets_users(fleet: Fleet) -> None:
    async with fleet.client() as client:

        async def chat() -> str:
            resp = await client.post("/v1/chat/completions", json=BODY)
            assert resp.status_code == 200, resp.text
            assert resp.text.rstrip().endswith("data: [DONE]")
            return resp.headers["x-fleet-server"]

        served = Counter(await asyncio.gather(*(chat() for _ in range(6 * PROCESSES))))
    assert sorted(served) == [f"chatwire{n}" for n in range(PROCESSES)]
    assert set(served.values()) == {6}
