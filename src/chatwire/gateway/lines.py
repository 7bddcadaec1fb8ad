"""Turning an upstream body, block by block, into what it carries: one line framing for every
wire format, and the two kinds of reader a family gives.

Each block the socket hands over is split into lines here, and every complete line goes to
the format's ``item`` (after the ``data:`` prefix of server-sent events, when the format has
one); a line cut between two blocks waits for the rest. A ``TextReader`` gives the reply's text
of a block as one string (the chatbot-ui route's fast path: typed decoding of the text, and
of the usage on the lines that carry it, only); a ``DeltaReader`` gives OpenAI
chat.completion.chunk bodies (``choices``, and ``usage`` where the format places it), the
canonical deltas every other dialect encodes. Every reader keeps the provider's usage in the
canonical shape in ``usage`` (``team.usage``), and counts the characters of text it relayed
in ``relayed``, from which the ledger estimates the output of a reply cut before its usage.

Why not aiohttp's ``readline``: it costs a Python-level buffer walk and an await per line
(two lines per event), which measured as the largest single cost of relaying a reply on the
bench machine. Splitting a block that is already in hand costs one C call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

T = TypeVar("T")

MAX_LINE = 1024 * 1024
# What decoding untrusted JSON can raise: malformed, the wrong shape, not UTF-8, too deep.
DECODE_ERRORS = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    UnicodeDecodeError,
    RecursionError,
)
# Valid JSON of a shape the provider never sends (a field of another type), met while
# reading a value decoded loosely.
SHAPE_ERRORS = (AttributeError, TypeError, KeyError, ValueError, IndexError)


class StreamFailed(Exception):
    """The upstream stream broke: malformed data, an error event, or no proper end."""


class Lines(Generic[T]):
    """One reply's line framing. A format sets ``prefix`` (``b"data:"`` for server-sent
    events, whose other fields and comments are skipped; empty for NDJSON) and implements
    ``item`` for one decoded value. ``finished`` must be set when the format's proper end is
    seen; a body that ends without it is a failure (``close`` raises), never a silently
    truncated reply."""

    __slots__ = ("_decode", "_rest", "finished", "relayed", "usage")
    prefix: ClassVar[bytes] = b""

    def __init__(self, decoder: msgspec.json.Decoder[Any]) -> None:
        self._rest = b""
        self._decode = decoder.decode
        self.finished = False
        # The provider's usage in the canonical shape, once reported.
        self.usage: dict[str, Any] | None = None
        # Characters of the reply's text (and reasoning, and tool-call arguments) relayed.
        self.relayed = 0

    def lines(self, block: bytes) -> list[bytes]:
        if self._rest:
            block = self._rest + block
        lines = block.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > MAX_LINE:
            raise StreamFailed(f"a line longer than {MAX_LINE} bytes")
        return lines

    def rest(self) -> bytes:
        rest, self._rest = self._rest, b""
        return rest

    def items(
        self, block: bytes, flat: bool = False, first: Callable[[bytes], Any] | None = None
    ) -> list[Any]:
        """What the complete lines of ``block`` give (``item``, ``done``), empty ones left out;
        ``flat``: each is a list, and their elements are given. ``first``: tried on each
        line's data before the decoder; what it gives (not None) is the line's one item, and
        the line is decoded no further (a reader's fast path for the lines it can take).

        ``value`` written out in the loop: a method call per line (two lines per event) was a
        measurable share of a reply's cost per delta (callgrind, instructions per delta)."""
        out: list[Any] = []
        prefix, size, decode, item = self.prefix, len(self.prefix), self._decode, self.item
        for line in self.lines(block):
            if prefix:
                if not line.startswith(prefix):
                    continue
                line = line[size:]
            data = line.strip()
            if not data:
                continue
            if data == b"[DONE]":
                self.finished = True
                last = self.done()
                if last:
                    if flat:
                        out += last  # type: ignore[arg-type]
                    else:
                        out.append(last)
                continue
            if first is not None:
                got = first(data)
                if got is not None:
                    out.append(got)
                    continue
            try:
                decoded = decode(data)
            except DECODE_ERRORS as exc:
                raise StreamFailed(
                    f"an event that is not valid JSON of the expected shape ({exc})"
                ) from exc
            try:
                got = item(decoded)
            except SHAPE_ERRORS as exc:
                raise StreamFailed(f"an event of an unexpected shape ({exc!r})") from exc
            if got:
                if flat:
                    out += got  # type: ignore[arg-type]
                else:
                    out.append(got)
        return out

    def value(self, line: bytes) -> T | None:
        prefix = self.prefix
        if prefix:
            if not line.startswith(prefix):
                return None
            line = line[len(prefix) :]
        data = line.strip()
        if not data:
            return None
        if data == b"[DONE]":
            self.finished = True
            return self.done()
        try:
            item = self._decode(data)
        except DECODE_ERRORS as exc:
            raise StreamFailed(
                f"an event that is not valid JSON of the expected shape ({exc})"
            ) from exc
        try:
            return self.item(item)
        except SHAPE_ERRORS as exc:
            raise StreamFailed(f"an event of an unexpected shape ({exc!r})") from exc

    def item(self, item: Any) -> T | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def done(self) -> T | None:
        """What the stream's end marker (``[DONE]``) releases; nothing by default."""
        return None

    def check_end(self) -> None:
        if not self.finished:
            raise StreamFailed("the stream ended before the reply was complete")


class TextReader(Lines[str]):
    """The reply's text only: ``feed`` gives the text of the complete events of a block."""

    __slots__ = ()

    def feed(self, block: bytes) -> str:
        texts = self.items(block)
        if not texts:
            return ""
        text = texts[0] if len(texts) == 1 else "".join(texts)
        self.relayed += len(text)
        return text

    def close(self) -> str:
        """The body ended: decode what is left and check the reply was complete."""
        rest = self.rest()
        text = self.value(rest) if rest.strip() else None
        self.check_end()
        if text:
            self.relayed += len(text)
        return text or ""


Chunk = dict[str, Any]


class DeltaReader(Lines[list[Chunk]]):
    """The reply as OpenAI chunk bodies; ``usage`` keeps what the provider reported."""

    __slots__ = ()
    # Whether the reader puts the usage on its chunks itself (else the dialect adds it to the
    # finish chunk when the client did not ask for OpenAI's usage chunk).
    places_usage: ClassVar[bool] = False

    def feed(self, block: bytes) -> list[Chunk]:
        chunks = self.items(block, flat=True)
        if chunks:
            self.relayed += text_size(chunks)
        return chunks

    def close(self) -> list[Chunk]:
        rest = self.rest()
        out = (self.value(rest) or []) if rest.strip() else []
        self.check_end()
        if out:
            self.relayed += text_size(out)
        return out


def text_size(chunks: list[Chunk]) -> int:
    """Characters of text, reasoning and tool-call arguments in canonical chunks."""
    size = 0
    for chunk in chunks:
        choices = chunk.get("choices") if type(chunk) is dict else None
        for choice in choices if type(choices) is list else ():
            change = (
                (choice.get("delta") or choice.get("message")) if type(choice) is dict else None
            )
            if type(change) is not dict:
                continue
            for key in ("content", "reasoning_content"):
                value = change.get(key)
                if type(value) is str:
                    size += len(value)
            calls = change.get("tool_calls")
            for call in calls if type(calls) is list else ():
                function = call.get("function") if type(call) is dict else None
                arguments = function.get("arguments") if type(function) is dict else None
                if type(arguments) is str:
                    size += len(arguments)
    return size


class Relay(Lines[None]):
    """An upstream's body passed on as it came, to a client of the provider's own API
    (``feed`` gives each block back unchanged); the format reads what it needs on the way
    (``item`` for the lines holding one of its ``marks``: the usage, the end), never changing
    a byte. The lines holding ``text_mark`` carry the reply's text: their length less
    ``framing`` (the JSON around the text) counts as text relayed, unread."""

    __slots__ = ()
    marks: ClassVar[tuple[bytes, ...]] = ()
    text_mark: ClassVar[bytes] = b""
    framing: ClassVar[int] = 0

    def feed(self, block: bytes) -> bytes:
        marks, text_mark = self.marks, self.text_mark
        for line in self.lines(block):
            if text_mark and text_mark in line:
                self.relayed += max(len(line) - self.framing, 0)
            elif any(mark in line for mark in marks):
                self.value(line)
        return block

    def close(self) -> bytes:
        rest = self.rest()
        if rest.strip():
            self.value(rest)
        self.check_end()
        return b""


ANY_JSON: msgspec.json.Decoder[dict[str, Any]] = msgspec.json.Decoder(dict[str, Any])
