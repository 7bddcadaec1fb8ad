"""How many chat requests one process takes at once: in all, for one user, and in bytes.

Past either count a request is refused at once, before its body is read or an upstream is
called, with a Retry-After: 503 when the process is full (another process behind the same
address may have room), 429 when the caller has too many of their own open. The bodies the
admitted chats hold count against a budget too, as they arrive (503 past it), so memory
stays bounded whatever the load: a few thousand chats of 10 MB bodies would otherwise fit
under the count. What is counted is what a body costs, not only its bytes: before it is
decoded, a chat is charged what its parsing and its upstream request may hold at their peak
(``parsed_cost``: 10 MiB of tiny messages become over 200 MiB of Python objects), and once
its upstream request is built, only that request's bytes, which is all it keeps. The counts
are this process's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chatwire.errors import BodyTooLarge, Overloaded, TooManyStreams

# Bytes a decoded body and the upstream request built from it may hold at their peak, per
# JSON object, per quote (a string is two), per comma (an element or member) and per byte of
# the body: set above what was measured for each family and for shapes from one long string
# to hundreds of thousands of tiny messages (the peak: 26 bytes per body byte for tiny
# messages to Gemini, whose cost here is 33).
PER_OBJECT = 600
PER_QUOTE = 30
PER_COMMA = 40
PER_BYTE = 3


def parsed_cost(body: bytes) -> int:
    """What decoding ``body`` and building its upstream request may hold, beyond the body."""
    return (
        PER_OBJECT * body.count(b"{")
        + PER_QUOTE * body.count(b'"')
        + PER_COMMA * body.count(b",")
        + PER_BYTE * len(body)
    )


class Place:
    """One admitted chat: what its body holds of the process's budget."""

    __slots__ = ("_admission", "held")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.held = 0

    def charge(self, size: int) -> None:
        """Count ``size`` more bytes of this chat's body; 503 past the process's budget."""
        admission = self._admission
        if admission.body_budget and admission.body_bytes + size > admission.body_budget:
            raise Overloaded(
                f"chatwire holds {admission.body_budget // 2**20} MiB of request bodies, its "
                "limit (CHATWIRE_BODY_MEMORY); try again in a moment.",
                admission.retry_after,
            )
        admission.body_bytes += size
        self.held += size

    def charge_parsing(self, body: bytes) -> None:
        """Count what decoding ``body`` will hold (``parsed_cost``), before it is decoded: a
        503 past the budget, a 413 when the budget could never hold it."""
        budget = self._admission.body_budget
        if not budget:
            return  # no budget: nothing to count against
        cost = parsed_cost(body)
        if self.held + cost > budget:
            raise BodyTooLarge(
                f"This body of {len(body)} bytes would take about "
                f"{(self.held + cost) // 2**20} MiB once decoded, more than chatwire holds for "
                f"all request bodies at once ({budget // 2**20} MiB, CHATWIRE_BODY_MEMORY): send "
                "fewer, larger messages or a smaller body."
            )
        self.charge(cost)

    def hold_only(self, size: int) -> None:
        """From now on the chat holds ``size`` bytes (its upstream request), no more."""
        if size < self.held:
            self._admission.body_bytes -= self.held - size
            self.held = size


class Admission:
    def __init__(
        self, per_process: int, per_user: int, body_budget: int = 0, retry_after: int = 1
    ) -> None:
        self._per_process = per_process
        self._per_user = per_user
        self.body_budget = body_budget
        self.retry_after = retry_after
        self.open = 0
        self.body_bytes = 0
        self._by_user: dict[int, int] = {}

    @contextmanager
    def admit(self, user_id: int) -> Iterator[Place]:
        """Hold one of the process's and one of the user's places while the block runs."""
        if self._per_process and self.open >= self._per_process:
            raise Overloaded(
                f"chatwire is at its limit of {self._per_process} chats at once "
                "(CHATWIRE_MAX_STREAMS); try again in a moment.",
                self.retry_after,
            )
        mine = self._by_user.get(user_id, 0)
        if self._per_user and mine >= self._per_user:
            raise TooManyStreams(
                f"You have {mine} chats open at once, the most allowed per user "
                "(CHATWIRE_MAX_STREAMS_PER_USER); wait for one to finish.",
                self.retry_after,
            )
        self.open += 1
        self._by_user[user_id] = mine + 1
        place = Place(self)
        try:
            yield place
        finally:
            self.body_bytes -= place.held
            self.open -= 1
            left = self._by_user[user_id] - 1
            if left:
                self._by_user[user_id] = left
            else:
                del self._by_user[user_id]
