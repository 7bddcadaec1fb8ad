"""How many chat requests one process takes at once: in all, for one user, and in bytes.

Past either count a request is refused at once, before its body is read or an upstream is
called, with a Retry-After: 503 when the process is full (another process behind the same
address may have room), 429 when the caller has too many of their own open. The bodies the
admitted chats hold count against a budget too, as they arrive (503 past it), so memory
stays bounded whatever the load: a few thousand chats of 10 MB bodies would otherwise fit
under the count. The counts are this process's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chatwire.errors import Overloaded, TooManyStreams


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
