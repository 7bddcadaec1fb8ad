"""What the Messages API tests share: chatwire wired to a fake, the anthropic SDK's client,
the raw events of a stream, and the tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anthropic
import httpx

from tests.conftest import Running

WEATHER: Any = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}
INPUT = {"city": "Lyon", "unit": "celsius"}
USER: Any = [{"role": "user", "content": "Lyon"}]


@dataclass
class Wired:
    fake: Any
    server: Running

    def client(self, token: str | None = None, **options: Any) -> anthropic.AsyncAnthropic:
        """The anthropic SDK at chatwire, its token as the API key (``x-api-key``)."""
        return anthropic.AsyncAnthropic(
            base_url=self.server.url,
            api_key=token or self.server.token,
            max_retries=0,
            **options,
        )

    @property
    def sent(self) -> dict[str, Any]:
        """The body the fake received last."""
        body: dict[str, Any] = self.fake.requests[-1].json
        return body

    async def post(
        self, body: dict[str, Any], path: str = "/v1/messages", **headers: str
    ) -> httpx.Response:
        """A raw request, its token in ``x-api-key``."""
        heads = {"x-api-key": self.server.token, "anthropic-version": "2023-06-01", **headers}
        return await self.server.client.post(path, json=body, headers=heads)


def events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """A stream's events, in order: each one's ``event:`` name and its data."""
    import json

    found = []
    for frame in body.decode().split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.split("\n"))
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def kinds(found: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The events' names, each delta named by its own type."""
    return [
        f"{name}:{data['delta']['type']}" if name == "content_block_delta" else name
        for name, data in found
    ]
