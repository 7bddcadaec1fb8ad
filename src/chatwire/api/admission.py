"""How many chat requests one process takes at once: in all, and for one user.

Past either cap a request is refused at once, before its body is read or an upstream is
called, with a Retry-After: 503 when the process is full (another process behind the same
address may have room), 429 when the caller has too many of their own open. Memory then
stays bounded whatever the load. The counts are this process's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chatwire.errors import Overloaded, TooManyStreams


class Admission:
    def __init__(self, per_process: int, per_user: int, retry_after: int = 1) -> None:
        self._per_process = per_process
        self._per_user = per_user
        self._retry_after = retry_after
        self.open = 0
        self._by_user: dict[int, int] = {}

    @contextmanager
    def admit(self, user_id: int) -> Iterator[None]:
        """Hold one of the process's and one of the user's places while the block runs."""
        if self._per_process and self.open >= self._per_process:
            raise Overloaded(
                f"chatwire is at its limit of {self._per_process} chats at once "
                "(CHATWIRE_MAX_STREAMS); try again in a moment.",
                self._retry_after,
            )
        mine = self._by_user.get(user_id, 0)
        if self._per_user and mine >= self._per_user:
            raise TooManyStreams(
                f"You have {mine} chats open at once, the most allowed per user "
                "(CHATWIRE_MAX_STREAMS_PER_USER); wait for one to finish.",
                self._retry_after,
            )
        self.open += 1
        self._by_user[user_id] = mine + 1
        try:
            yield
        finally:
            self.open -= 1
            left = self._by_user[user_id] - 1
            if left:
                self._by_user[user_id] = left
            else:
                del self._by_user[user_id]
