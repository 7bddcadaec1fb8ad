"""Turning an upstream body, block by block, into the reply text it carries.

Each block the socket hands over is split into lines here, and every complete line goes to
the wire format's ``line`` method; the text of all complete events in a block comes back
as one string, sent on at once. A line cut between two blocks waits for the rest.

Why not aiohttp's ``readline``: it costs a Python-level buffer walk and an await per line
(two lines per event), which measured as the largest single cost of relaying a reply on the
bench machine. Splitting a block that is already in hand costs one C call.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

import msgspec

from chatwire.providers.base import StreamFailed

T = TypeVar("T")

MAX_LINE = 1024 * 1024
# What decoding untrusted JSON can raise: malformed, the wrong shape, not UTF-8, too deep.
DECODE_ERRORS = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    UnicodeDecodeError,
    RecursionError,
)


class LineDecoder:
    """Base for one reply's decoder; a wire format overrides ``line``.

    ``finished`` must be set by ``line`` when the format's proper end is seen; a body that
    ends without it is a failure (``close`` raises), never a silently truncated reply.
    """

    __slots__ = ("_rest", "finished")

    def __init__(self) -> None:
        self._rest = b""
        self.finished = False

    def feed(self, block: bytes) -> str:
        if self._rest:
            block = self._rest + block
        lines = block.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > MAX_LINE:
            raise StreamFailed(f"a line longer than {MAX_LINE} bytes")
        texts = [text for text in map(self.line, lines) if text]
        if not texts:
            return ""
        return texts[0] if len(texts) == 1 else "".join(texts)

    def close(self) -> str:
        """The body ended: decode what is left and check the reply was complete."""
        rest, self._rest = self._rest, b""
        text = self.line(rest) if rest.strip() else None
        if not self.finished:
            raise StreamFailed("the stream ended before the reply was complete")
        return text or ""

    def line(self, line: bytes) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError


class JSONLines(LineDecoder, Generic[T]):
    """Lines that each carry one JSON value: NDJSON, or with ``prefix = b"data:"``, the
    data lines of server-sent events (other SSE fields and comments are skipped). A wire
    format implements ``item`` for one decoded value."""

    __slots__ = ("_decode",)
    prefix: ClassVar[bytes] = b""

    def __init__(self, decoder: msgspec.json.Decoder[T]) -> None:
        super().__init__()
        self._decode = decoder.decode

    def line(self, line: bytes) -> str | None:
        if self.prefix:
            if not line.startswith(self.prefix):
                return None
            line = line[len(self.prefix) :]
        data = line.strip()
        if not data:
            return None
        if data == b"[DONE]":
            self.finished = True
            return None
        try:
            item = self._decode(data)
        except DECODE_ERRORS as exc:
            raise StreamFailed(
                f"an event that is not valid JSON of the expected shape ({exc})"
            ) from exc
        return self.item(item)

    def item(self, item: T) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError
