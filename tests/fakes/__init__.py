"""The tests' doubles: fake upstreams, one per wire family, on real TCP.

They are not part of the product (the wheel ships only ``chatwire.demo_upstream``, the small
fake Mistral of ``chatwire demo``); tests and the soak import them from here, and
``python -m tests.fakes`` serves one as a process.

Every fake takes the same keywords (``api_key``, ``models``, ``reply``, ``first_token_delay``,
``token_delay``), records ``requests``, counts ``open_connections`` and ``active_requests``,
tells a test its ``expected_reply``, and accepts the same fault model names (``_faults``),
answering each in its provider's own words. ``run_fake`` serves one until a signal.

The Mistral, OpenAI and Ollama fakes also call tools (``_tool_calls``), and so do the
Anthropic and Gemini fakes in their own wire shapes (``_anthropic_tools``, ``_gemini_tools``):
``will_call_tool`` and ``expected_tool_call`` tell a test which call a request gets;
``calls_tools = False`` has a fake answer with text even when tools are offered, and
``tool_arguments`` gives every call its arguments (for clients whose tools and words a test
does not choose, as coding agents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from tests.fakes import fake_anthropic, fake_gemini, fake_mistral, fake_ollama, fake_openai
from tests.fakes._server import FakeServer, RecordedRequest
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

__all__ = [
    "FAKE_KINDS",
    "FakeAnthropic",
    "FakeGemini",
    "FakeMistral",
    "FakeOllama",
    "FakeOpenAI",
    "FakeServer",
    "RecordedRequest",
    "run_fake",
]

_RUNNERS: Final[Mapping[str, Callable[..., None]]] = MappingProxyType(
    {
        "mistral": fake_mistral.run,
        "openai": fake_openai.run,
        "anthropic": fake_anthropic.run,
        "gemini": fake_gemini.run,
        "ollama": fake_ollama.run,
    }
)
FAKE_KINDS: Final = tuple(_RUNNERS)


def run_fake(kind: str, host: str, port: int, **options: Any) -> None:
    """Serve the fake upstream of ``kind`` until SIGINT or SIGTERM, printing its base URL.

    ``options`` are that fake's constructor keywords; ValueError names the kinds there are.
    """
    runner = _RUNNERS.get(kind)
    if runner is None:
        raise ValueError(f"no fake upstream {kind!r}; choose one of {', '.join(FAKE_KINDS)}")
    runner(host, port, **options)
