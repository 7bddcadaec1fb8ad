"""Reply text shared by every fake upstream: the echo reply and its word pieces.

Every fake streams the same text the same way, so a test written against one provider's fake
reads the same against another: ``"Hello! You said: <last user text>"`` cut into pieces that
keep their one leading space. Token counts are piece counts, so usage numbers are exact.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Mapping
from typing import Final

_PIECE: Final = re.compile(r" ?\S+|\s+(?!\S)|\s+")
_ALPHANUMERIC: Final = string.ascii_letters + string.digits


def split_pieces(text: str) -> list[str]:
    """Split text the way tokenizers stream it: words keep their one leading space.

    Other whitespace stands alone, so ``"  \\n Hi"`` becomes ``["  \\n", " Hi"]``.
    """
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    """The fakes' token count: one token per piece."""
    return len(split_pieces(text))


def echo(user_text: str) -> str:
    """The default reply: it names the last user message, and starts with no whitespace."""
    return f"Hello! You said: {user_text}" if user_text else "Hello! You said nothing."


def message_text(content: object) -> str:
    """The text of a message's content: a string, null, or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def compact(value: object) -> str:
    """JSON with no spaces and UTF-8 left as is (Mistral, OpenAI and Anthropic streams)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def random_id(length: int) -> str:
    """Letters and digits, as the ids of OpenAI and Anthropic objects use."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))
