"""What the Gemini conformance tests share: the fake and chatwire wired, the clients, the tools.

The fake calls the request's function with arguments derived from its schema
(``fake.expected_tool_call``), signs calls from thinking models (``fake.signatures``) and
answers function responses with ``"The tool said: <output>"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import openai
from langchain_openai import ChatOpenAI
from mistralai.client import Mistral
from mistralai.client.utils import BackoffStrategy, RetryConfig
from pydantic import SecretStr

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_gemini import FakeGemini

MODEL = "google/gemini-2.5-flash"
GEMINI_3 = "google/gemini-3-flash-preview"
CALL_ID = re.compile(r"call_[0-9a-f]{24}(\.[A-Za-z0-9+/=]+)?")
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city's name."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,  # refused by Gemini's `parameters`, not by JSON schema
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
TOOLS: list[Any] = [WEATHER]
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Lyon"},
]
ARGUMENTS = {"city": "Lyon", "unit": "celsius"}
NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)


@dataclass
class Wired:
    fake: FakeGemini
    server: Running

    def openai(self) -> openai.AsyncOpenAI:
        url = f"{self.server.url}/v1"
        return openai.AsyncOpenAI(base_url=url, api_key=self.server.token, max_retries=0)

    def mistral(self, key: str | None = None) -> Mistral:
        token = key or self.server.token
        return Mistral(api_key=token, server_url=self.server.url, retry_config=NO_RETRIES)

    def langchain(self, model: str = MODEL) -> ChatOpenAI:
        url = f"{self.server.url}/v1"
        key = SecretStr(self.server.token)
        return ChatOpenAI(base_url=url, api_key=key, model=model, max_retries=0)

    @property
    def sent(self) -> dict[str, Any]:
        body: dict[str, Any] = self.fake.requests[-1].json
        return body


async def start(make_server: ServerFactory, fake: FakeGemini, **settings: Any) -> Wired:
    overrides = {"google_base_url": fake.base_url, "google_gemini_api_key": fake.api_key}
    return Wired(fake, await make_server(stored_key=None, **{**overrides, **settings}))


def foreign_call(arguments: str = '{"city": "Lyon", "unit": "celsius"}') -> list[Any]:
    """A call made elsewhere (another provider's id, no thought signature) and its result."""
    call_id = "call_Qib2xfCV1qpazcvBOLg3wCNL"
    function = {"name": "get_weather", "arguments": arguments}
    return [
        {"role": "assistant", "tool_calls": [{"id": call_id, "function": function}]},
        {"role": "tool", "tool_call_id": call_id, "content": '{"temperature": 12}'},
    ]
