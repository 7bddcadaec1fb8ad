"""Memory given back to the system after a burst.

CPython returns freed memory to the C allocator, but glibc's malloc keeps freed chunks inside
its heap for reuse, so a process that held many streams at once stays at its peak size after
they end (measured: 500 clients that did not read left 1.1 GiB held). Every ``INTERVAL`` s
this looks at how much the heap holds free (``mallinfo2``) and, past ``FREE_THRESHOLD``,
returns it (``malloc_trim``). A trim takes some milliseconds on a large heap, in the event
loop, so it runs only when that much sits free, about once after each burst. Elsewhere than
glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger("chatwire")

INTERVAL = 5.0
FREE_THRESHOLD = 16 * 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it has ``mallinfo2`` and ``malloc_trim`` (glibc), else None; found
    once per process (``find_library`` runs ``ldconfig -p`` in a child process each time)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    if not (hasattr(libc, "mallinfo2") and hasattr(libc, "malloc_trim")):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


class HeapTrimmer:
    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None = _glibc()

    @property
    def available(self) -> bool:
        return self._libc is not None

    def free_bytes(self) -> int:
        """Bytes the heap holds free, not yet returned to the system."""
        if self._libc is None:
            return 0
        info = self._libc.mallinfo2()
        return int(info.fordblks)

    def trim(self) -> bool:
        """Return the heap's free pages to the system; True when some were."""
        return self._libc is not None and bool(self._libc.malloc_trim(0))

    async def run(self, interval: float = INTERVAL, threshold: int = FREE_THRESHOLD) -> None:
        """Trim whenever more than ``threshold`` bytes sit free; until cancelled."""
        if self._libc is None:
            return
        while True:
            await asyncio.sleep(interval)
            free = self.free_bytes()
            if free > threshold:
                self.trim()
                log.debug("returned %d MiB of free heap to the system", free // 2**20)
