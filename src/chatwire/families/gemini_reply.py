"""The Gemini family's reply: ``streamGenerateContent``'s server-sent events read as text
(``TextChunks``, the chatbot-ui route's fast path) or as canonical deltas (``Chunks``), the
usage in OpenAI's shape, the ids chatwire gives Gemini's calls (carrying their thought
signatures), and which error answers mean the key was refused."""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from chatwire.families.openai_reply import mid_stream
from chatwire.gateway.call import delta
from chatwire.gateway.call import new_call_id as plain_call_id
from chatwire.gateway.lines import ANY_JSON, DeltaReader, StreamFailed, TextReader

KEY_REFUSED = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
FINISH: Final = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_OURS: Final = re.compile(r"call_[0-9a-f]{24}")
_encode = msgspec.json.Encoder().encode


def new_call_id(signature: str | None = None) -> str:
    """A fresh id for a call Gemini made, carrying its thought signature when it has one."""
    call_id = plain_call_id()
    return f"{call_id}.{signature}" if signature else call_id


def signature_of(call_id: str) -> str | None:
    """The thought signature inside an id chatwire gave, else None."""
    head, dot, signature = call_id.partition(".")
    return signature if dot and signature and _OURS.fullmatch(head) else None


# The reply as text: typed, reading only the text parts, the end and a blocked prompt.


class _Part(msgspec.Struct):
    text: str | None = None
    thought: bool = False


class _Content(msgspec.Struct):
    parts: list[_Part] = msgspec.field(default_factory=list)


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None


class _Feedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _TextChunk(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = msgspec.field(default_factory=list)
    prompt_feedback: _Feedback | None = None
    error: Any = None
    usage_metadata: dict[str, Any] | None = None


class _ErrorDetail(msgspec.Struct):
    reason: str | None = None


class _ErrorInfo(msgspec.Struct):
    details: list[_ErrorDetail] = msgspec.field(default_factory=list)


class _ErrorBody(msgspec.Struct):
    error: _ErrorInfo | None = None


TEXT_CHUNK = msgspec.json.Decoder(_TextChunk)
_ERROR = msgspec.json.Decoder(_ErrorBody)


class TextChunks(TextReader):
    """Each ``data:`` line is a GenerateContentResponse; a finishReason ends the reply. Each
    chunk's usageMetadata is cumulative (a count may be told once): the counts are kept as
    they come and made the canonical usage when the reply ends."""

    __slots__ = ("_meta",)
    prefix = b"data:"

    def __init__(self) -> None:
        super().__init__(TEXT_CHUNK)
        self._meta: dict[str, Any] = {}

    def item(self, chunk: _TextChunk) -> str | None:
        if chunk.error is not None:
            raise mid_stream(chunk.error)
        if chunk.usage_metadata:
            self._meta.update(chunk.usage_metadata)
        if chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason:
            raise StreamFailed(f"the prompt was blocked ({chunk.prompt_feedback.block_reason})")
        if not chunk.candidates:
            return None
        candidate = chunk.candidates[0]
        if candidate.finish_reason is not None:
            self.finished = True
            self.usage = _usage(self._meta) if self._meta else None
        if candidate.content is None:
            return None
        # Thought summaries are not the reply.
        return "".join(p.text for p in candidate.content.parts if p.text and not p.thought)


# The reply as deltas.


class Chunks(DeltaReader):
    __slots__ = ("_calls", "_meta", "_started")
    prefix = b"data:"

    def __init__(self) -> None:
        super().__init__(ANY_JSON)
        self._calls = 0
        self._started = False
        # The counts so far: each chunk's usageMetadata is cumulative, but a chunk may leave
        # a count out (the cached tokens told once), so each count is the last one told.
        self._meta: dict[str, Any] = {}

    def item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        meta = item.get("usageMetadata")
        if isinstance(meta, dict) and meta:
            self._meta.update(meta)
            self.usage = _usage(self._meta)
        candidates = item.get("candidates") or []
        out: list[dict[str, Any]] = []
        if candidates:
            candidate = candidates[0]
            out = self._parts((candidate.get("content") or {}).get("parts") or ())
            reason = candidate.get("finishReason")
        else:
            # A refused prompt gets no candidate at all, only the reason.
            blocked = (item.get("promptFeedback") or {}).get("blockReason")
            reason = "SAFETY" if blocked else None
        if reason:
            self.finished = True
            called = self._calls > 0 and reason == "STOP"
            out.append(delta(finish="tool_calls" if called else FINISH.get(reason, "stop")))
        if out and not self._started:
            self._started = True
            out[0]["choices"][0]["delta"]["role"] = "assistant"
        return out

    def _parts(self, parts: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        text: list[str] = []
        for part in parts:
            if not isinstance(part, dict):
                continue
            if part.get("thought"):
                # A thought summary (asked for with reasoning_effort): reasoning, not the reply.
                if part.get("text"):
                    if text:
                        out.append(delta("".join(text)))
                        text = []
                    out.append(_reasoning(part["text"]))
                continue
            call = part.get("functionCall")
            if isinstance(call, dict):
                if text:
                    out.append(delta("".join(text)))
                    text = []
                out.append(self._call(call, part.get("thoughtSignature")))
            elif part.get("text"):
                text.append(part["text"])
        if text:
            out.append(delta("".join(text)))
        return out

    def _call(self, call: dict[str, Any], signature: Any) -> dict[str, Any]:
        piece = {
            "index": self._calls,
            "id": new_call_id(signature if isinstance(signature, str) else None),
            "type": "function",
            "function": {
                "name": call.get("name") or "",
                "arguments": _encode(call.get("args") or {}).decode(),
            },
        }
        self._calls += 1
        return delta(tool_calls=[piece])


def _reasoning(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"reasoning_content": text}, "finish_reason": None}]}


def _usage(meta: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's usage: the model's thinking counts as completion tokens, as OpenAI counts
    reasoning tokens, and is told apart as ``reasoning_tokens``; the prompt of its tool use
    (``toolUsePromptTokenCount``) is input too. ``promptTokenCount`` already counts the
    cached content, told apart as ``cached_tokens``. Details only where Gemini gave them."""
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount")
    completion = (meta.get("candidatesTokenCount") or 0) + (thoughts or 0)
    total = meta.get("totalTokenCount")
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if isinstance(total, int) else prompt + completion,
    }
    if thoughts is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    cached = meta.get("cachedContentTokenCount")
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def key_refused(status: int, body: bytes) -> bool:
    """Whether an error answer means Gemini refused the key."""
    if status not in (400, 403):
        return False
    try:
        parsed = _ERROR.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return False
    return parsed.error is not None and any(d.reason in KEY_REFUSED for d in parsed.error.details)
