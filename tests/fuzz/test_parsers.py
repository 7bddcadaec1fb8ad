"""Every parser of untrusted bytes, fuzzed with hypothesis: whatever comes in, the only
failures are chatwire's own (a 400 for a client's body, a broken-stream failure for an
upstream's), never another exception, and never a hang."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatwire.api.schemas import decode_chat_request
from chatwire.core.config import Settings
from chatwire.dialects.openai_chat import OpenAIChat
from chatwire.errors import RequestInvalid
from chatwire.families.anthropic_reply import Events as AnthropicChunks
from chatwire.families.gemini_reply import Chunks as GeminiChunks
from chatwire.families.ollama import Lines as OllamaChunks
from chatwire.families.openai import _message
from chatwire.families.openai_reply import Chunks as OpenAIChunks
from chatwire.gateway.lines import DeltaReader as ChunkReader
from chatwire.gateway.lines import StreamFailed
from chatwire.providers.error_text import readable_message
from chatwire.providers.registry import build_providers

FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
# Bodies that are almost right are where parsers break: valid JSON of the wrong shape,
# truncated JSON, random bytes, and deep nesting.
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    JSON.map(lambda v: json.dumps(v).encode()[:-1]),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
)
CHATS = st.fixed_dictionaries(
    {"chatSettings": st.fixed_dictionaries({"model": st.text()}) | JSON, "messages": JSON}
).map(lambda v: json.dumps(v).encode())


@FUZZ
@given(st.one_of(BODIES, CHATS))
def test_chat_bodies_are_a_400_or_decoded(body: bytes) -> None:
    with contextlib.suppress(RequestInvalid):
        decode_chat_request(body)


@FUZZ
@given(st.one_of(BODIES, JSON.map(lambda v: json.dumps({"model": "m", "messages": v}).encode())))
def test_completion_bodies_are_a_400_or_decoded(body: bytes) -> None:
    with contextlib.suppress(RequestInvalid):
        OpenAIChat().decode("/v1/chat/completions", body)


@FUZZ
@given(
    st.lists(JSON, max_size=5),
    st.sampled_from(["mistral", "groq", "perplexity", "custom"]),
    st.booleans(),
)
def test_message_rules_take_any_messages(messages: Any, provider: str, drop: bool) -> None:
    rules = PROVIDERS[provider].rules
    with contextlib.suppress(RequestInvalid):
        for index, message in enumerate(messages):
            _message(rules, provider, index, message, drop)


# The field names the providers' events use, so that generated events reach the readers'
# conversions (random names almost never do), with values of any type.
WIRE_NAMES = st.sampled_from(
    [
        "choices",
        "delta",
        "content",
        "message",
        "role",
        "finish_reason",
        "usage",
        "index",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "id",
        "type",
        "text",
        "content_block",
        "partial_json",
        "stop_reason",
        "input_tokens",
        "output_tokens",
        "candidates",
        "parts",
        "functionCall",
        "args",
        "finishReason",
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "done",
        "done_reason",
        "eval_count",
        "prompt_eval_count",
        "error",
        "thought",
        "thoughtSignature",
    ]
)
WIRE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(WIRE_NAMES, inner, max_size=5),
    max_leaves=25,
)
STREAM_LINES = st.one_of(
    st.dictionaries(WIRE_NAMES, WIRE, max_size=6).map(lambda v: b"data: " + json.dumps(v).encode()),
    st.dictionaries(WIRE_NAMES, WIRE, max_size=6).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=80),
    st.integers(1, 3000).map(lambda depth: b"data: " + b"[" * depth + b"]" * depth),
    st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    JSON.map(lambda v: b"data: " + json.dumps(v).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.just(b"data: [DONE]"),
)
READERS: list[Callable[[], ChunkReader]] = [
    OpenAIChunks,
    lambda: OpenAIChunks(keep_usage=True, usage_follows=True),
    AnthropicChunks,
    GeminiChunks,
    OllamaChunks,
]


@pytest.mark.parametrize("make", READERS)
@FUZZ
@given(lines=st.lists(STREAM_LINES, max_size=8), cut=st.integers(0, 50))
def test_v1_readers_fail_only_as_a_broken_stream(
    make: Callable[[], ChunkReader], lines: list[bytes], cut: int
) -> None:
    body = b"\n".join(lines) + b"\n"
    reader = make()
    try:
        reader.feed(body[:cut])
        reader.feed(body[cut:])
        reader.close()
    except StreamFailed:
        pass


PROVIDERS = build_providers(Settings(data_dir=Path("/nonexistent")))


def _reader_state(name: str) -> tuple[type, dict[str, Any]]:
    """What a fresh text reader of provider ``name`` is: its class and every slot's value."""
    reader = PROVIDERS[name].family.text_reader(PROVIDERS[name])
    slots = {
        slot: getattr(reader, slot)
        for klass in type(reader).__mro__
        for slot in getattr(klass, "__slots__", ())
        if hasattr(reader, slot)
    }
    slots.update(getattr(reader, "__dict__", {}))
    return type(reader), slots


def _alike_readers() -> list[list[str]]:
    """Every provider, grouped where their text readers are the same class in the same
    state, so run the same code: the fuzzing is derandomized, and each member of a group
    would get the very same inputs through the very same reader. A reader that differs in
    any slot (or has state that does not compare equal) is a group of its own."""
    groups: list[tuple[tuple[type, dict[str, Any]], list[str]]] = []
    for name in sorted(PROVIDERS):
        state = _reader_state(name)
        for seen, members in groups:
            if seen == state:
                members.append(name)
                break
        else:
            groups.append((state, [name]))
    return [members for _, members in groups]


ALIKE = _alike_readers()


@pytest.mark.parametrize(
    "group", ALIKE, ids=[f"{g[0]}+{len(g) - 1}" if len(g) > 1 else g[0] for g in ALIKE]
)
@FUZZ
@given(lines=st.lists(STREAM_LINES, max_size=8), cut=st.integers(0, 50))
def test_chat_decoders_fail_only_as_a_broken_stream(
    group: list[str], lines: list[bytes], cut: int
) -> None:
    provider = PROVIDERS[group[0]]
    body = b"\n".join(lines) + b"\n"
    decoder = provider.family.text_reader(provider)
    try:
        decoder.feed(body[:cut])
        decoder.feed(body[cut:])
        decoder.close()
    except StreamFailed:
        pass


@FUZZ
@given(BODIES)
def test_error_bodies_give_a_short_message_or_none(body: bytes) -> None:
    message = readable_message(body)
    assert message is None or (isinstance(message, str) and len(message) <= 503)
