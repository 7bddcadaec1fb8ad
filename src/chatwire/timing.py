"""Server-Timing: what chatwire itself costs on a request, next to what the upstream costs."""

from __future__ import annotations

import time


class Timing:
    """Server-Timing: chatwire's own time before calling the upstream, and the upstream's."""

    __slots__ = ("answered", "arrived", "sent")

    def __init__(self) -> None:
        self.arrived = time.perf_counter()
        self.sent = self.answered = 0.0

    def header(self) -> tuple[bytes, bytes]:
        parts = []
        if self.sent:
            parts.append(f"gateway;dur={(self.sent - self.arrived) * 1000:.3f}")
        else:
            parts.append(f"gateway;dur={(time.perf_counter() - self.arrived) * 1000:.3f}")
        if self.answered:
            parts.append(f"upstream;dur={(self.answered - self.sent) * 1000:.3f}")
        return (b"server-timing", ", ".join(parts).encode())
