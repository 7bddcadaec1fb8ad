"""Request loops: chatwire marks its upstream requests with ``Via: 1.1 chatwire`` (one entry
per chatwire the request passed through), and refuses one that already passed MAX_HOPS.

A custom model pointed at chatwire's own ``/v1`` with the user's own token would otherwise
call itself until the per-user cap (512 nested chats from one request); a chain of distinct
gateways, a few deep, still works. Only chatwire's own entries are sent on: the other proxies
a client came through are no business of a provider's.
"""

from __future__ import annotations

from chatwire.errors import LoopDetected

MAX_HOPS = 3
_ENTRY = "1.1 chatwire"
# The header for a request that passed through 0, 1, ... chatwire gateways before this one.
_HEADERS = tuple(", ".join([_ENTRY] * (hops + 1)) for hops in range(MAX_HOPS))


def hops(via: bytes | None) -> int:
    """How many of the incoming ``Via`` entries are chatwire's (``<protocol> chatwire``)."""
    if via is None:
        return 0
    count = 0
    for entry in via.split(b","):
        words = entry.split()
        if len(words) >= 2 and words[1].lower() == b"chatwire":
            count += 1
    return count


def check_hops(via: bytes | None) -> int:
    """The request's chatwire hops so far; a loop (MAX_HOPS of them) is a 508."""
    passed = hops(via)
    if passed >= MAX_HOPS:
        raise LoopDetected(
            f"This request already passed through chatwire {passed} times (Via), the most "
            f"allowed is {MAX_HOPS}: a custom model's base URL probably leads back to "
            "chatwire itself."
        )
    return passed


def via_header(passed: int) -> str:
    return _HEADERS[min(passed, MAX_HOPS - 1)]
