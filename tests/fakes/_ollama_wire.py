"""What the fake Ollama server says: NDJSON chat lines, the model list, Go-style errors.

Ollama is a Go server: its JSON is compact with ``<``, ``>`` and ``&`` escaped as ``\\u003c``
and so on, timestamps are RFC 3339 with nanoseconds, durations are integer nanoseconds, and
errors are ``{"error":"<text>"}`` (``_ollama_validate`` has the request checks). A streamed
chat (``application/x-ndjson``) is one object per line, ``done: false`` with one piece each,
then a ``done: true`` object with empty content, ``done_reason`` and the counts.

A tool call comes whole, in a ``done: false`` line of its own with empty content (streamed
since Ollama 0.8), or in the one object's message: ``{"id": "call_<8 letters and digits>",
"function": {"index": 0, "name": ..., "arguments": {...}}}``, the arguments a JSON object.
The ``id`` and ``index`` came with 0.12.10; before, a call was ``{"function": {"name",
"arguments"}}`` only. The reply still ends with ``done_reason: "stop"``.

A request with ``think: true`` is thought about first: ``"Considering: <last user text>"``,
in ``done: false`` lines of ``message.thinking`` pieces with empty content, before the reply
(not streamed: the one object's ``message.thinking``), as Ollama sends a thinking model's
thoughts.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tests.fakes._text import count_tokens, message_text

LOAD_DURATION_NS: Final = 1_250_000
MIN_GENERATION_NS: Final = 10_000_000
RUNNER_CRASHED: Final = "llama runner process has terminated: exit status 2"
SERVER_BUSY: Final = "server busy, please try again.  maximum pending requests exceeded"
MID_STREAM_ERROR: Final = "an error was encountered while running the model: unexpected EOF"
_CALL_ID_CHARS: Final = string.ascii_lowercase + string.digits


def go_json(value: object) -> str:
    """JSON as Go's ``encoding/json`` writes it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def timestamp(ns: int | None = None) -> str:
    """``time.Now().UTC()`` in RFC 3339 with nanoseconds, trailing zeros trimmed, as Go does."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def thinking_of(body: Mapping[str, Any]) -> str | None:
    """What a request with ``think: true`` thinks before its reply, else None."""
    if body.get("think") is not True:
        return None
    said = ""
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            said = message_text(message.get("content"))
            break
    return f"Considering: {said}" if said else "Considering the request."


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(count_tokens(message_text(message.get("content"))) for message in messages)


def line(body: Mapping[str, Any]) -> bytes:
    return (go_json(body) + "\n").encode()


def chat_object(
    model: str,
    content: str,
    *,
    done: bool,
    tool_calls: list[dict[str, Any]] | None = None,
    thinking: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"model": model, "created_at": timestamp(), "message": message, "done": done}


def tool_call(
    name: str, arguments: dict[str, Any], *, index: int, call_id: str | None
) -> dict[str, Any]:
    """One call as Ollama sends it: with its id and index since 0.12.10 (``call_id``)."""
    if call_id is None:
        return {"function": {"name": name, "arguments": arguments}}
    return {"id": call_id, "function": {"index": index, "name": name, "arguments": arguments}}


def new_call_id() -> str:
    """``call_`` and 8 lower-case letters and digits, as Ollama's ids are."""
    return "call_" + "".join(secrets.choice(_CALL_ID_CHARS) for _ in range(8))


def final_object(
    model: str,
    content: str,
    *,
    reason: str,
    started_ns: int,
    prompt: int,
    output: int,
    tool_calls: list[dict[str, Any]] | None = None,
    thinking: str | None = None,
) -> dict[str, Any]:
    """The ``done: true`` object, with the counts and durations of the whole request."""
    total = max(time.monotonic_ns() - started_ns, LOAD_DURATION_NS + MIN_GENERATION_NS)
    final = chat_object(model, content, done=True, tool_calls=tool_calls, thinking=thinking)
    del final["done"]  # Go writes done_reason first
    return {
        **final,
        "done_reason": reason,
        "done": True,
        "total_duration": total,
        "load_duration": LOAD_DURATION_NS,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": (total - LOAD_DURATION_NS) // 10,
        "eval_count": output,
        "eval_duration": (total - LOAD_DURATION_NS) * 9 // 10,
    }


def load_object(model: str) -> dict[str, Any]:
    """What an empty ``messages`` list gets: the model is loaded, nothing is generated."""
    loaded = chat_object(model, "", done=True)
    del loaded["done"]
    return {**loaded, "done_reason": "load", "done": True}


class NdjsonFraming:
    """One chat, line by line; with ``tool_calls``, its one piece is the line of the calls."""

    def __init__(
        self,
        model: str,
        prompt: int,
        pieces: int,
        reason: str,
        started_ns: int,
        tool_calls: list[dict[str, Any]] | None = None,
        thinking: Sequence[str] = (),
    ):
        self._thinking = thinking
        self._model = model
        self._prompt = prompt
        self._pieces = pieces
        self._reason = reason
        self._started_ns = started_ns
        self._tool_calls = tool_calls

    def opening(self) -> bytes:
        return b"".join(
            line(chat_object(self._model, "", done=False, thinking=piece))
            for piece in self._thinking
        )

    def piece(self, text: str, *, last: bool) -> bytes:
        if self._tool_calls:
            return line(chat_object(self._model, "", done=False, tool_calls=self._tool_calls))
        return line(chat_object(self._model, text, done=False))

    def closing(self) -> bytes:
        return line(
            final_object(
                self._model,
                "",
                reason=self._reason,
                started_ns=self._started_ns,
                prompt=self._prompt,
                output=self._pieces,
            )
        )

    def error(self) -> bytes:
        return line({"error": MID_STREAM_ERROR})


def model_tag(model: str) -> dict[str, Any]:
    """One entry of ``GET /api/tags``."""
    family = model.split(":")[0].rstrip("0123456789.")
    return {
        "name": model,
        "model": model,
        "modified_at": timestamp(1_735_689_600_000_000_000),
        "size": 2_019_393_189,
        "digest": hashlib.sha256(model.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family or "llama",
            "families": [family or "llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }
