"""What the fake Ollama server says: NDJSON chat lines, the model list, Go-style errors.

Ollama is a Go server: its JSON is compact with ``<``, ``>`` and ``&`` escaped as ``\\u003c``
and so on, timestamps are RFC 3339 with nanoseconds, durations are integer nanoseconds, and
errors are ``{"error":"<text>"}``, with decoding errors in ``encoding/json``'s words. A streamed
chat (``application/x-ndjson``) is one object per line, ``done: false`` with one piece each,
then a ``done: true`` object with empty content, ``done_reason`` and the counts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from chatwire.testing._text import count_tokens, message_text

LOAD_DURATION_NS: Final = 1_250_000
MIN_GENERATION_NS: Final = 10_000_000
RUNNER_CRASHED: Final = "llama runner process has terminated: exit status 2"
SERVER_BUSY: Final = "server busy, please try again.  maximum pending requests exceeded"
MID_STREAM_ERROR: Final = "an error was encountered while running the model: unexpected EOF"
_GO_TYPES: Final[Mapping[type, str]] = MappingProxyType(
    {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}
)
_FIELD_TYPES: Final[Mapping[str, tuple[type, str]]] = MappingProxyType(
    {
        "model": (str, "string"),
        "messages": (list, "[]api.Message"),
        "stream": (bool, "bool"),
        "options": (dict, "map[string]interface {}"),
        "keep_alive": (str, "*api.Duration"),
    }
)
_MESSAGE_TYPES: Final[Mapping[str, tuple[type, str]]] = MappingProxyType(
    {"role": (str, "string"), "content": (str, "string"), "images": (list, "[]api.ImageData")}
)


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


def decode_problem(raw: bytes, problem: ValueError) -> str:
    """``encoding/json``'s message for a body that is not JSON."""
    if not raw.strip():
        return "missing request body"
    position = getattr(problem, "pos", 0)
    if position >= len(raw):
        return "unexpected EOF"
    char = raw[position : position + 1].decode(errors="replace")
    if str(problem).startswith("Expecting property name"):
        return f"invalid character '{char}' looking for beginning of object key string"
    return f"invalid character '{char}' looking for beginning of value"


def type_problem(body: object) -> str | None:
    """The first ``cannot unmarshal`` error decoding a ``ChatRequest``, or None."""
    if not isinstance(body, dict):
        return f"json: cannot unmarshal {_go_type(body)} into Go value of type api.ChatRequest"
    for name, (expected, go_type) in _FIELD_TYPES.items():
        problem = _mismatch(body.get(name), expected, f"ChatRequest.{name}", go_type)
        if problem is not None:
            return problem
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            return _mismatch(message, dict, "ChatRequest.messages", "api.Message")
        for name, (expected, go_type) in _MESSAGE_TYPES.items():
            where = f"ChatRequest.messages.{name}"
            problem = _mismatch(message.get(name), expected, where, go_type)
            if problem is not None:
                return problem
        for image in message.get("images") or []:
            problem = _image_problem(image)
            if problem is not None:
                return problem
    return None


def _go_type(value: object) -> str:
    return _GO_TYPES.get(type(value), "value")


def _mismatch(value: object, expected: type, where: str, go_type: str) -> str | None:
    """Go leaves a field at its zero value for null; a bool is never a number or a string."""
    if value is None:
        return None
    if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return None
    kind = _go_type(value)
    return f"json: cannot unmarshal {kind} into Go struct field {where} of type {go_type}"


def _image_problem(image: object) -> str | None:
    if not isinstance(image, str):
        where = "ChatRequest.messages.images"
        return (
            f"json: cannot unmarshal {_go_type(image)} into Go struct field {where} of type []uint8"
        )
    try:
        base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(image) if not (c.isalnum() or c in "+/=")), 0)
        return f"illegal base64 data at input byte {bad}"
    return None


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(count_tokens(message_text(message.get("content"))) for message in messages)


def line(body: Mapping[str, Any]) -> bytes:
    return (go_json(body) + "\n").encode()


def chat_object(model: str, content: str, *, done: bool) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": timestamp(),
        "message": {"role": "assistant", "content": content},
        "done": done,
    }


def final_object(
    model: str, content: str, *, reason: str, started_ns: int, prompt: int, output: int
) -> dict[str, Any]:
    """The ``done: true`` object, with the counts and durations of the whole request."""
    total = max(time.monotonic_ns() - started_ns, LOAD_DURATION_NS + MIN_GENERATION_NS)
    return {
        "model": model,
        "created_at": timestamp(),
        "message": {"role": "assistant", "content": content},
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
    """One chat, line by line."""

    def __init__(self, model: str, prompt: int, pieces: int, reason: str, started_ns: int):
        self._model = model
        self._prompt = prompt
        self._pieces = pieces
        self._reason = reason
        self._started_ns = started_ns

    def opening(self) -> bytes:
        return b""

    def piece(self, text: str, *, last: bool) -> bytes:
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
