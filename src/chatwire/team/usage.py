"""What one chat used, in tokens, as the ledger and the limits count it.

Every family reports its provider's usage in the canonical (OpenAI chat-completions) shape:
``prompt_tokens`` counts every input token, those read from a prompt cache
(``prompt_tokens_details.cached_tokens``) and those written to one
(``prompt_tokens_details.cache_write_tokens``) included; ``completion_tokens`` counts every
output token, reasoning (``completion_tokens_details.reasoning_tokens``) included.
``Usage`` keeps the same five numbers under one name each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    """Tokens of one chat. ``input`` and ``output`` are totals: ``cached_input`` and
    ``cache_write`` are part of ``input``, ``reasoning`` is part of ``output``.
    ``estimated``: chatwire counted them (the provider reported none, or the reply was cut
    before it did), not the provider."""

    input: int = 0
    output: int = 0
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.input + self.output

    @classmethod
    def from_canonical(cls, usage: Mapping[str, Any]) -> Usage:
        """The usage a family reported, in the canonical shape (see the module's doc)."""
        found = cls(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
        details = usage.get("prompt_tokens_details")
        if details:
            found.cached_input = _count(details.get("cached_tokens"))
            found.cache_write = _count(details.get("cache_write_tokens"))
        completion = usage.get("completion_tokens_details")
        if completion:
            found.reasoning = _count(completion.get("reasoning_tokens"))
        return found


def _count(value: Any) -> int:
    """A token count as reported; anything else (absent, null, not a whole number) is 0."""
    return value if type(value) is int and value > 0 else 0
