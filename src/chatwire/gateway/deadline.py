"""One timer per chat for every time limit it runs under, one after the other.

A chat has a time limit in each phase: its body must arrive within
``CHATWIRE_BODY_TIMEOUT``, its reply must start within the first-byte timeout, and all of it
must be done within ``CHATWIRE_MAX_CHAT_SECONDS``. ``asyncio.timeout`` per phase does the job,
but it is the hot path's largest cost after the relay itself: a context manager per phase and
a timer cancelled and made again at every reschedule (measured with callgrind on the bench's
short replies: the body's and the relay's timeouts took 60,000 of 1,270,000 instructions per
request, the difference between meeting the bench's gate and missing it).

So a chat has one ``Deadline``: moving it later (the usual case, phase after phase) changes a
number and nothing else; the one timer, set for the earliest deadline it was given, looks
again when it fires and sleeps on when the deadline has moved. When the deadline passes, the
chat's task is cancelled, as ``asyncio.timeout`` does, and ``fired`` tells the pipeline which
phase ran out (the pipeline un-cancels the task and answers the phase's error).
"""

from __future__ import annotations

import asyncio

BODY = "body"
FIRST_BYTE = "first byte"
CHAT = "chat"


class Deadline:
    __slots__ = ("_handle", "_loop", "_task", "armed", "fired", "phase", "when")

    def __init__(self, when: float, phase: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.when: float | None = when
        self.phase = phase
        self.fired: str | None = None  # the phase whose time ran out
        self.armed = when
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(when, self._check)

    def move(self, when: float | None, phase: str) -> None:
        """From now on the chat must be done with ``phase`` by ``when`` (None: no limit)."""
        self.when = when
        self.phase = phase
        if when is not None and (self._handle is None or when < self.armed):
            self._arm(when)

    def close(self) -> None:
        self.when = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.armed = when
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        when = self.when
        if when is None or self._task is None:
            return
        if self._loop.time() < when:
            self._arm(when)  # moved later since the timer was set
            return
        self.fired = self.phase
        self.when = None
        self._task.cancel()

    def took(self) -> bool:
        """Whether the deadline cancelled the task (then un-cancelled here, once)."""
        if self.fired is None or self._task is None:
            return False
        self._task.uncancel()
        return True
