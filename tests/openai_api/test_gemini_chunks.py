"""Gemini's stream read as OpenAI chunks: replies the fake does not make, fed as bytes."""

from __future__ import annotations

import json
from typing import Any

from chatwire.dialects.openai_chat import collected_message
from chatwire.families.gemini_reply import Chunks as GeminiChunks
from chatwire.families.gemini_reply import signature_of


def event(*parts: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    body = {"candidates": [candidate], **extra}
    return f"data: {json.dumps(body)}\r\n\r\n".encode()


def read(*events: bytes, reader: GeminiChunks | None = None) -> list[dict[str, Any]]:
    reader = reader or GeminiChunks()
    # Cut the stream mid-event, as a socket may.
    data = b"".join(events)
    chunks = reader.feed(data[:7]) + reader.feed(data[7:])
    assert reader.finished
    return chunks


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks]


def test_text_then_parallel_calls_in_one_reply() -> None:
    chunks = read(
        event({"text": "Let me check."}),
        event(
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Lyon"}},
                "thoughtSignature": "c2ln",
            },
            {"functionCall": {"name": "get_time", "args": {}}},
            finish="STOP",
        ),
    )
    text, first, second, end = deltas(chunks)
    assert text == {"role": "assistant", "content": "Let me check."}
    calls = [first["tool_calls"][0], second["tool_calls"][0]]
    assert [(c["index"], c["type"], c["function"]["name"]) for c in calls] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Lyon"}, {}]
    # Gemini signs the first call of a step only; the signature travels in that call's id.
    assert [signature_of(c["id"]) for c in calls] == ["c2ln", None]
    assert calls[0]["id"] != calls[1]["id"]
    assert end == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    message, finish = collected_message(chunks)
    assert finish == "tool_calls"
    assert message["content"] == "Let me check."
    assert [call["function"]["name"] for call in message["tool_calls"]] == [
        "get_weather",
        "get_time",
    ]


def test_thoughts_are_reasoning_not_the_reply_and_count_as_completion_tokens() -> None:
    usage = {
        "promptTokenCount": 4,
        "candidatesTokenCount": 2,
        "thoughtsTokenCount": 10,
        "totalTokenCount": 16,
    }
    reader = GeminiChunks()
    chunks = read(
        event({"text": "Pondering...", "thought": True}),
        event({"text": "Hi."}, finish="STOP", usageMetadata=usage),
        reader=reader,
    )
    assert [d.get("content") for d in deltas(chunks)] == [None, "Hi.", None]
    assert [d.get("reasoning_content") for d in deltas(chunks)] == ["Pondering...", None, None]
    assert reader.usage == {
        "prompt_tokens": 4,
        "completion_tokens": 12,
        "total_tokens": 16,
        "completion_tokens_details": {"reasoning_tokens": 10},
    }


def test_counts_told_once_are_kept_and_tool_prompts_are_input() -> None:
    """Each count is the last one told: the cached content's, told on the first chunk only,
    stays; a reported 0 is kept, not dropped."""
    first = {"promptTokenCount": 20, "cachedContentTokenCount": 12, "totalTokenCount": 20}
    last = {
        "promptTokenCount": 20,
        "toolUsePromptTokenCount": 3,
        "candidatesTokenCount": 2,
        "thoughtsTokenCount": 0,
        "totalTokenCount": 25,
    }
    reader = GeminiChunks()
    read(
        event({"text": "H"}, usageMetadata=first),
        event({"text": "i."}, finish="STOP", usageMetadata=last),
        reader=reader,
    )
    assert reader.usage == {
        "prompt_tokens": 23,
        "completion_tokens": 2,
        "total_tokens": 25,
        "prompt_tokens_details": {"cached_tokens": 12},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_safety_stops_and_blocked_prompts_are_content_filter() -> None:
    stopped = read(event({"text": "Well"}), event(finish="SAFETY"))
    assert stopped[-1]["choices"][0]["finish_reason"] == "content_filter"
    blocked = read(b'data: {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}\r\n\r\n')
    assert [c["choices"][0]["finish_reason"] for c in blocked] == ["content_filter"]
