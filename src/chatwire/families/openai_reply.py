"""The OpenAI-compatible family's reply readers: the chatbot-ui route's text reader (typed,
decoding only each chunk's delta text, finish reason, usage and error), the streamed delta
reader (``Chunks``: usage where the client looks for it, tool calls delivered whole, and
plain text deltas passed on as the provider's own bytes), and the whole answer of a call
that is not streamed (``Answer``)."""

from __future__ import annotations

from typing import Any

import msgspec

from chatwire.gateway.lines import (
    ANY_JSON,
    DECODE_ERRORS,
    DeltaReader,
    StreamFailed,
    TextReader,
    text_size,
)
from chatwire.providers.error_text import readable_message


# The text reader: typed, reading only what the text needs.
class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct, omit_defaults=True):
    cached_tokens: Any = None
    cache_write_tokens: Any = None


class _CompletionDetails(msgspec.Struct, omit_defaults=True):
    reasoning_tokens: Any = None


class _Usage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: Any = None
    completion_tokens: Any = None
    total_tokens: Any = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    error: Any = None
    # On the last chunk only (decoded only where present).
    usage: _Usage | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)


class TextEvents(TextReader):
    """Data-only server-sent events; each ``data:`` line is one JSON chunk, then [DONE]. A
    provider asked for its usage (``stream_options``) sends it in a chunk of its own after
    the finish reason: its reply ends at [DONE] (or with the body), else at the finish
    reason."""

    __slots__ = ("_finish_seen", "_usage_follows")
    prefix = b"data:"

    def __init__(self, usage_follows: bool = False) -> None:
        super().__init__(_CHUNK)
        self._usage_follows = usage_follows
        self._finish_seen = False

    def item(self, chunk: _Chunk) -> str | None:
        if chunk.error is not None:
            raise mid_stream(chunk.error)
        if chunk.usage is not None:
            self.usage = msgspec.to_builtins(chunk.usage)
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            if choice.finish_reason == "error":
                raise StreamFailed("the reply ended with finish_reason 'error'")
            if self._usage_follows:
                self._finish_seen = True
            else:
                self.finished = True
        return choice.delta.content if choice.delta is not None else None

    def close(self) -> str:
        self.finished = self.finished or self._finish_seen
        return super().close()


# The delta reader's fast path (``Chunks._steady``): a chunk of nothing but text deltas,
# checked by typed decodes that refuse anything else (an unknown field is a ValidationError),
# whose ``choices`` go on as the provider's own bytes. Every field is decoded, none skipped:
# msgspec skips a field without checking its strings are UTF-8, which the whole decode of
# the other path refuses. The fields besides ``content`` and ``reasoning_content`` are the
# ones the other path passes on unread.
class _TextDelta(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    role: Any = None
    refusal: Any = None
    reasoning: Any = None


class _TextChoice(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    index: Any = None
    delta: _TextDelta | None = None
    finish_reason: None = None
    logprobs: Any = None


class _Steady(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    choices: msgspec.Raw
    usage: None = None
    error: None = None
    # Dropped on either path: the output has the client's own.
    id: Any = None
    object: Any = None
    created: Any = None
    model: Any = None
    system_fingerprint: Any = None
    service_tier: Any = None
    obfuscation: Any = None


_STEADY = msgspec.json.Decoder(_Steady).decode
_TEXT_CHOICES = msgspec.json.Decoder(list[_TextChoice]).decode


def mid_stream(error: Any) -> StreamFailed:
    """The failure for an error the provider reported inside its stream."""
    text = readable_message(msgspec.json.encode(error)) or "no details"
    return StreamFailed(f"an error in the middle of the reply: {text}")


class Chunks(DeltaReader):
    """Already chunks. The reply ends at [DONE]: OpenAI sends its usage chunk after the
    finish reason; a stream that ends after a finish reason without [DONE] is complete too.

    A tool call goes to the client whole, in one delta, once it is complete (the next call
    begins, or the choice finishes), as Mistral sends calls: OpenAI streams a call's
    arguments in pieces whose later deltas carry no name, which the Mistral SDKs refuse.

    ``allow_raw``: the fast path of /v1's streamed output (see ``_steady``).
    """

    __slots__ = (
        "_call_ids",
        "_calls",
        "_cr",
        "_finish_seen",
        "_held",
        "_hold_finish",
        "_keep_usage",
        "_raw",
        "_started",
    )
    prefix = b"data:"
    places_usage = True

    def __init__(self, keep_usage: bool = False, usage_follows: bool = False) -> None:
        super().__init__(ANY_JSON)
        self._finish_seen = False
        self._call_ids: dict[str, int] = {}
        # Without include_usage, usage stays where the provider put it (Mistral's own
        # clients read it from the last chunk); with it, it moves to OpenAI's usage chunk.
        self._keep_usage = keep_usage
        # OpenAI sends usage (when asked) in a chunk of its own after the finish reason:
        # without include_usage, the finish chunk waits for it and carries it, as Mistral's.
        self._hold_finish = keep_usage and usage_follows
        # From the first finish chunk on (one per choice when n > 1), in order.
        self._held: list[dict[str, Any]] = []
        self._started = False
        # Choice index -> its tool calls being gathered, by call index.
        self._calls: dict[Any, dict[int, dict[str, Any]]] = {}
        self._raw = False
        self._cr = False

    def allow_raw(self) -> None:
        """Lets ``feed`` give a text delta of the steady state as its ``choices``' own bytes
        (a ``msgspec.Raw``), for an output that writes the chunk's head itself."""
        self._raw = True

    def feed(self, block: bytes) -> list[Any]:
        first = None
        if self._raw:
            first = self._steady
            # Whether a line of this read may hold a CR (``_steady``). ``find``: ``in`` tries
            # its operand as an integer first, raising and clearing a TypeError each time.
            self._cr = block.find(b"\r") >= 0 or self._rest.find(b"\r") >= 0
        chunks = self.items(block, True, first)
        if chunks:
            self.relayed += text_size(chunks)
        return chunks

    def _steady(self, data: bytes) -> msgspec.Raw | None:
        """The chunk's ``choices`` as the provider sent them, when ``item`` would give the
        chunk with nothing changed but its head (the client's id and model): no usage, no
        error, and every choice a text delta (content, reasoning, a role) without a finish
        reason, once the first delta has had its role and while no finish chunk is held and
        no tool call is being gathered. Anything else: None, and the line takes ``item``.

        Why: a text delta is nearly every line of a reply, and decoding each to a dict to
        encode it again under the client's id and model was most of /v1's cost per delta,
        which a relay passing the bytes on does not pay: 32,497 instructions per delta
        before, 18,064 with this path (bench/README.md, "/v1's text deltas as the
        provider's bytes")."""
        if not self._started or self._held or self._calls:
            return None
        if self._cr and data.find(b"\r") >= 0:
            return None  # a bare CR between JSON's tokens would end the client's event line
        try:
            chunk = _STEADY(data)
            choices = _TEXT_CHOICES(chunk.choices)
        except DECODE_ERRORS:
            return None  # not of the fast path's shape; ``item`` says what it is
        if not choices:
            return None
        size = 0
        for choice in choices:
            change = choice.delta
            if change is not None:
                if change.content is not None:
                    size += len(change.content)
                if change.reasoning_content is not None:
                    size += len(change.reasoning_content)
        self.relayed += size
        return chunk.choices

    def item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        usage = item.get("usage") if self._keep_usage else item.pop("usage", None)
        self.usage = usage or self.usage
        choices = item.get("choices") or []
        if choices and not self._started:
            self._started = True
            first = choices[0].get("delta") if isinstance(choices[0], dict) else None
            if isinstance(first, dict):
                # OpenAI's clients (the Node SDK's stream helpers) want it in the first delta.
                first.setdefault("role", "assistant")
        finishing = gathering = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self._finish_seen = finishing = True
            change = choice.get("delta")
            if isinstance(change, dict) and "tool_calls" in change:
                gathering = True
        if gathering or (finishing and self._calls):
            choices = self._whole_calls(choices)
        if not choices:
            if not (self._held and usage):
                return []
            held, self._held = self._held, []
            held[-1] = {**held[-1], "usage": usage}
            return held
        chunk: dict[str, Any] = {"choices": choices}
        if self._keep_usage and usage:
            chunk["usage"] = usage
        elif self._hold_finish and (finishing or self._held):
            self._held.append(chunk)
            return []
        return [chunk]

    def _whole_calls(self, choices: list[Any]) -> list[Any]:
        """The choices with their tool-call pieces gathered: each call goes out whole once
        complete; a delta left with nothing but a piece being gathered is left out."""
        kept = []
        for choice in choices:
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            index = choice.get("index")
            finish = choice.get("finish_reason")
            change = choice.get("delta")
            pieces = change.pop("tool_calls", None) if isinstance(change, dict) else None
            if pieces:
                self._number(pieces)
            whole = self._gather(index, pieces) if pieces else []
            if finish:
                whole += self._flush(index)
            if whole:
                if not isinstance(change, dict):
                    change = choice["delta"] = {}
                change["tool_calls"] = whole
            elif pieces and not finish and not (change or {}).keys() & {"content", "role"}:
                continue  # nothing left of this delta but a piece of a call being gathered
            kept.append(choice)
        return kept

    def _gather(self, choice: Any, pieces: Any) -> list[dict[str, Any]]:
        """Adds the pieces to the choice's calls; gives the calls now complete, in order."""
        calls = self._calls.setdefault(choice, {})
        complete: list[dict[str, Any]] = []
        for piece in pieces if isinstance(pieces, list) else ():
            if not isinstance(piece, dict):
                continue
            index = piece.get("index", 0)
            if index not in calls:
                # A new call begins: those before it are complete.
                complete += [calls.pop(i) for i in sorted(calls) if i < index]
                calls[index] = {
                    "index": index,
                    "id": None,
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
            call = calls[index]
            if piece.get("id"):
                call["id"] = piece["id"]
            function = piece.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["function"]["name"] += function["name"]
                if isinstance(function.get("arguments"), str):
                    call["function"]["arguments"] += function["arguments"]
        return complete

    def _flush(self, choice: Any) -> list[dict[str, Any]]:
        calls = self._calls.pop(choice, {})
        return [calls[i] for i in sorted(calls)]

    def done(self) -> list[dict[str, Any]]:
        held, self._held = self._held, []
        # Calls still gathered when the stream ends go out before its end.
        for choice in sorted(self._calls, key=lambda c: c if isinstance(c, int) else 0):
            calls = self._flush(choice)
            held.append(
                {
                    "choices": [
                        {"index": choice, "delta": {"tool_calls": calls}, "finish_reason": None}
                    ]
                }
            )
        return held

    def close(self) -> list[dict[str, Any]]:
        self.finished = self.finished or self._finish_seen
        return super().close() + self.done()

    def _number(self, calls: Any) -> None:
        """OpenAI clients gather a streamed call by ``index`` and want its ``type``; Mistral
        sends each call whole, with neither: number them by id, in order."""
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            call_id = call.get("id")
            if "index" not in call:
                if isinstance(call_id, str):
                    call["index"] = self._call_ids.setdefault(call_id, len(self._call_ids))
                else:
                    call["index"] = max(len(self._call_ids) - 1, 0)
            if call_id is not None and "type" not in call:
                call["type"] = "function"


MAX_ANSWER = 16 * 1024 * 1024


class Answer(DeltaReader):
    """A non-streamed call's one ``chat.completion``, read whole (up to 16 MiB)."""

    __slots__ = ("_parts", "_size", "answer")

    def __init__(self) -> None:
        super().__init__(ANY_JSON)
        self._parts: list[bytes] = []
        self._size = 0
        self.answer: dict[str, Any] | None = None

    def feed(self, block: bytes) -> list[dict[str, Any]]:
        self._size += len(block)
        if self._size > MAX_ANSWER:
            raise StreamFailed(f"an answer larger than {MAX_ANSWER} bytes")
        self._parts.append(block)
        return []

    def close(self) -> list[dict[str, Any]]:
        try:
            answer = ANY_JSON.decode(b"".join(self._parts))
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
            raise StreamFailed("an answer that is not JSON") from None
        self._parts = []
        for choice in answer.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            for call in (message or {}).get("tool_calls") or ():
                if isinstance(call, dict):
                    call.setdefault("type", "function")
        usage = answer.get("usage")
        self.usage = usage if isinstance(usage, dict) else None
        self.answer = answer
        self.finished = True
        return []
