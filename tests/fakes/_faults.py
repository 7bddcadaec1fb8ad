"""The fault models every fake accepts as a model name, whatever its ``models`` list says.

What each one does is the same everywhere; what the error looks like is each provider's own:

- ``fake-429``: the provider's rate-limit error (with its retry hint).
- ``fake-500``: the provider's internal-error answer.
- ``fake-503``: the provider's "overloaded / unavailable" answer (529 for Anthropic).
- ``fake-drop``: a 200, the stream's opening and its first two content pieces, then the TCP
  connection is aborted mid-body. Not streamed: half of a ``Content-Length`` body, then the abort.
- ``fake-stall``: never answers, not even headers, until the client goes away or ``stop()``.
- ``fake-stall-mid``: like ``fake-drop`` but stalls instead of aborting.
- ``fake-split-utf8``: streams ``reply`` or ``SPLIT_UTF8_REPLY``, each write in two parts
  20 ms apart, cut inside its first multi-byte character (mid-write if it has none).
- ``fake-slow``: a normal reply with at least 50 ms between content pieces.
- ``fake-error-mid`` (Anthropic and Ollama, which report failures inside a started stream):
  two content pieces, then the provider's in-stream error, then the body ends cleanly.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final

FAULT_429: Final = "fake-429"
FAULT_500: Final = "fake-500"
FAULT_503: Final = "fake-503"
FAULT_DROP: Final = "fake-drop"
FAULT_STALL: Final = "fake-stall"
FAULT_STALL_MID: Final = "fake-stall-mid"
FAULT_SPLIT_UTF8: Final = "fake-split-utf8"
FAULT_SLOW: Final = "fake-slow"
FAULT_ERROR_MID: Final = "fake-error-mid"
FAULT_MODELS: Final = (
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    FAULT_STALL,
    FAULT_STALL_MID,
    FAULT_SPLIT_UTF8,
    FAULT_SLOW,
)
REFUSALS: Final = frozenset({FAULT_429, FAULT_500, FAULT_503})
SPLIT_UTF8_REPLY: Final = "héllo wörld — 你好 🌍 "
SLOW_TOKEN_DELAY: Final = 0.05
RETRY_AFTER_SECONDS: Final = 7


class Halt(Enum):
    """How a faulty reply ends after its first two content pieces."""

    DROP = "drop"  # abort the TCP connection mid-body
    STALL = "stall"  # keep the connection open and send nothing more
    ERROR = "error"  # send the provider's in-stream error event, then end the body


HALTS: Final[Mapping[str, Halt]] = MappingProxyType(
    {FAULT_DROP: Halt.DROP, FAULT_STALL_MID: Halt.STALL, FAULT_ERROR_MID: Halt.ERROR}
)
