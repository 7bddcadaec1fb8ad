"""Ollama's NDJSON lines read as OpenAI chunks: parallel tool calls, as Ollama sends them."""

from __future__ import annotations

import json
from typing import Any

from chatwire.families.ollama import Lines as OllamaChunks


def line(message: dict[str, Any], **extra: Any) -> bytes:
    body = {"model": "qwen3", "message": {"role": "assistant", **message}, **extra}
    return (json.dumps(body) + "\n").encode()


def calls_in(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or ()
    ]


DONE = line({"content": ""}, done=True, done_reason="stop", prompt_eval_count=9, eval_count=4)


def test_parallel_calls_are_numbered_across_lines_and_keep_ollamas_ids() -> None:
    reader = OllamaChunks()
    first = {"id": "call_aaaa1111", "function": {"index": 0, "name": "a", "arguments": {"x": 1}}}
    second = {"id": "call_bbbb2222", "function": {"index": 1, "name": "b", "arguments": {}}}
    chunks = reader.feed(line({"content": "", "tool_calls": [first]}, done=False))
    chunks += reader.feed(line({"content": "", "tool_calls": [second]}, done=False) + DONE)
    assert calls_in(chunks) == [
        {
            "index": 0,
            "id": "call_aaaa1111",
            "type": "function",
            "function": {"name": "a", "arguments": '{"x":1}'},
        },
        {
            "index": 1,
            "id": "call_bbbb2222",
            "type": "function",
            "function": {"name": "b", "arguments": "{}"},
        },
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert reader.finished
    assert reader.usage == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def test_calls_without_ids_get_distinct_ones() -> None:
    reader = OllamaChunks()
    calls = [
        {"function": {"name": "a", "arguments": {}}},
        {"function": {"name": "a", "arguments": {}}},
    ]
    chunks = reader.feed(line({"content": "", "tool_calls": calls}, done=False) + DONE)
    ids = [call["id"] for call in calls_in(chunks)]
    assert [call["index"] for call in calls_in(chunks)] == [0, 1]
    assert len(set(ids)) == 2
    assert all(call_id.startswith("call_") for call_id in ids)


def test_text_only_ends_with_stop_and_the_usage_is_kept() -> None:
    reader = OllamaChunks()
    chunks = reader.feed(line({"content": "Hi"}, done=False) + DONE)
    assert calls_in(chunks) == []
    # OpenAI's Node SDK (chat.completions.stream, runTools) wants the role in the first delta.
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # The relay puts it on the finish chunk or in OpenAI's usage chunk, as the client asked.
    assert reader.usage == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    assert all("usage" not in chunk for chunk in chunks)
