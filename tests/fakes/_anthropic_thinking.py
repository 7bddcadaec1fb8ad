"""Extended thinking in the fake Anthropic Messages API.

A request with ``thinking: {"type": "enabled", "budget_tokens": N}`` (N at least 1024 and
below ``max_tokens``, as Anthropic wants; ``{"type": "adaptive"}`` is taken, and thinks
nothing) is answered with a thinking block before its text:
``"Considering: <last user text>"``, in word pieces, then its signature. Streamed, as
Anthropic documents it: ``content_block_start`` with ``{"type": "thinking", "thinking": "",
"signature": ""}``, one ``thinking_delta`` per piece, one ``signature_delta``, then
``content_block_stop``; the text block follows at the next index. Not streamed, the message's
content starts with ``{"type": "thinking", "thinking", "signature"}``. The signature is the
base64 of the thinking's SHA-256, so a test can tell it (``thinking_of(body)``). Thinking
pieces count as output tokens, as Anthropic bills them.

When the user's words hold ``REDACTED_TRIGGER`` (the string Anthropic documents for testing
redacted thinking), the thinking is redacted: one ``redacted_thinking`` block with an opaque
``data`` string instead (streamed: its ``content_block_start`` carries it whole, then
``content_block_stop``). The data is the fake's own (``redacted_data``): given back, a block
whose data the fake did not make is refused, as Anthropic refuses altered thinking.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes._text import message_text, split_pieces

MIN_BUDGET = 1024
REDACTED_TRIGGER = (
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253"
)


@dataclass(frozen=True, slots=True)
class Thinking:
    text: str
    signature: str
    # The data of a redacted_thinking block, which the reply then has instead.
    redacted: str | None = None

    def pieces(self) -> list[str]:
        return split_pieces(self.text) if self.redacted is None else []

    def block(self) -> dict[str, Any]:
        """The block whole, as a message's content gives it."""
        if self.redacted is not None:
            return {"type": "redacted_thinking", "data": self.redacted}
        return {"type": "thinking", "thinking": self.text, "signature": self.signature}


def thinking_of(body: Mapping[str, Any]) -> Thinking | None:
    """The thinking a (valid) Messages API body gets, or None without ``thinking``."""
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return None
    said = ""
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            said = message_text(message.get("content"))
            break
    text = f"Considering: {said}" if said else "Considering the request."
    if REDACTED_TRIGGER in said:
        return Thinking("", "", redacted_data(text))
    return Thinking(text, signed(text))


def signed(text: str) -> str:
    """The fake's signature of a thinking text: the base64 of its SHA-256."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def redacted_data(text: str) -> str:
    """The opaque data of a redacted thinking: a digest of its text and the fake's seal on
    that digest, in base64."""
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b64encode(digest + _seal(digest)).decode()


def redacted_data_is_the_fake_s(data: object) -> bool:
    """Whether a redacted_thinking block's data is one ``redacted_data`` made."""
    if not isinstance(data, str):
        return False
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        return False
    return len(raw) == 64 and raw[32:] == _seal(raw[:32])


def _seal(digest: bytes) -> bytes:
    return hashlib.sha256(b"redacted thinking " + digest).digest()


def thinking_problem(body: Mapping[str, Any]) -> str | None:
    """Anthropic's refusal of a ``thinking`` parameter, or None when it is fine."""
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kinds = ("enabled", "disabled", "adaptive")
    if not isinstance(thinking, Mapping) or thinking.get("type") not in kinds:
        return (
            "thinking: Input tag found using 'type' does not match any of the expected tags:"
            " 'enabled', 'disabled', 'adaptive'"
        )
    if thinking["type"] != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int):
        return "thinking.enabled.budget_tokens: Field required"
    if budget < MIN_BUDGET:
        return (
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}"
        )
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens <= budget:
        return "`max_tokens` must be greater than `thinking.budget_tokens`."
    return None
