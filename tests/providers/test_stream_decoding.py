"""Decoding an OpenAI-compatible stream block by block, however the socket cuts it."""

from __future__ import annotations

import json

import pytest

from chatwire.core.config import Settings
from chatwire.gateway.lines import StreamFailed, TextReader
from chatwire.providers.registry import build_providers


def decoder() -> TextReader:
    provider = build_providers(Settings(mistral_api_key=None))["mistral"]
    return provider.family.text_reader(provider)


def event(content: str | None, finish: str | None = None, **extra: object) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {
        "id": "0" * 32,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


REPLY = [
    event("", role="assistant"),
    event("Héllo"),
    event(" wörld —"),
    event(" 你好 🌍"),
    event(
        ".", finish="stop", usage={"prompt_tokens": 3, "total_tokens": 8, "completion_tokens": 5}
    ),
    b"data: [DONE]\n\n",
]
BODY = b"".join(REPLY)
TEXT = "Héllo wörld — 你好 🌍."


def test_whole_body_in_one_read() -> None:
    d = decoder()
    assert d.feed(BODY) + d.close() == TEXT


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_body_cut_into_tiny_reads_including_inside_characters(size: int) -> None:
    d = decoder()
    out = [d.feed(BODY[i : i + size]) for i in range(0, len(BODY), size)]
    out.append(d.close())
    assert "".join(out) == TEXT
    for piece in out:
        piece.encode("utf-8")  # every piece is whole characters


def test_each_cut_point_of_a_multibyte_character() -> None:
    cut = BODY.index("你".encode()) + 1  # one byte into a three-byte character
    d = decoder()
    first = d.feed(BODY[:cut])
    second = d.feed(BODY[cut:])
    assert first == "Héllo wörld —"
    assert second + d.close() == " 你好 🌍."


def test_crlf_line_endings_and_comments_are_accepted() -> None:
    body = b": keep-alive\r\n\r\n" + BODY.replace(b"\n", b"\r\n")
    d = decoder()
    assert d.feed(body) + d.close() == TEXT


def test_old_style_chunks_with_spaces_and_null_role_parse() -> None:
    body = (
        b'data: {"id": "cmpl-1", "choices": [{"index": 0, "delta": {"role": null, "content": "Hi"},'
        b' "finish_reason": null}]}\n\n'
        b'data: {"id": "cmpl-1", "choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "stop"}]}\n\n'
    )
    d = decoder()
    assert d.feed(body) + d.close() == "Hi!"


def test_finish_reason_without_done_is_a_complete_reply() -> None:
    d = decoder()
    assert d.feed(b"".join(REPLY[:-1])) + d.close() == TEXT


def test_a_body_that_ends_early_is_a_failure() -> None:
    d = decoder()
    assert d.feed(b"".join(REPLY[:3])) == "Héllo wörld —"
    with pytest.raises(StreamFailed, match="ended before the reply was complete"):
        d.close()


def test_malformed_json_is_a_failure() -> None:
    d = decoder()
    with pytest.raises(StreamFailed, match="not valid JSON"):
        d.feed(b'data: {"choices": [\n\n')


def test_an_error_event_is_a_failure_with_its_message() -> None:
    d = decoder()
    with pytest.raises(StreamFailed, match="Model overloaded"):
        d.feed(b'data: {"error": {"message": "Model overloaded", "code": 529}}\n\n')


def test_finish_reason_error_is_a_failure() -> None:
    d = decoder()
    with pytest.raises(StreamFailed, match="finish_reason 'error'"):
        d.feed(event("partial", finish="error"))


def test_an_endless_line_is_refused() -> None:
    d = decoder()
    for _ in range(10):
        d.feed(b"x" * 100_000)  # a long line, still under the limit
    with pytest.raises(StreamFailed, match="longer than"):
        d.feed(b"x" * 100_000)


def test_null_choices_and_deltas_are_empty_not_broken() -> None:
    d = decoder()
    body = (
        b'data: {"choices": null}\n\n'
        b'data: {"choices": [{"delta": null, "finish_reason": null}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n'
    )
    assert d.feed(body) + d.close() == "ok"
