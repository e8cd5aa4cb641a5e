"""Giving memory back to the system after a burst of SIP traffic.

pjsip keeps every completed non-INVITE transaction for Timer J to absorb retransmissions:
32 s normally, 500 ms under a flood (agent.core.sipload). When they expire, glibc keeps the freed
heap (measured: 250 MB resident long after a flood, 34 MB after `malloc_trim(0)`), so a
device would carry its busiest minute's memory for good. The owner loop asks `due()` each
turn; once traffic has stopped the heap is trimmed twice: after a few quiet seconds (the
flood's short-lived transactions are gone) and after Timer J's full 32 s (the ones from
before the flood was noticed are gone too).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# Timer J (64 * T1 = 32 s) plus a margin: by then the burst's transactions are gone.
QUIET_S = 40.0
# Most of a flood's memory can go back sooner: its transactions lived 500 ms.
EARLY_S = 5.0


def _libc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None where the C library has none (not glibc)."""
    try:
        # The process's own symbols, libc's among them: no ctypes.util.find_library, which
        # runs `ldconfig -p` in a subprocess and imports shutil, tempfile and bz2 for it.
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return lambda: trim(0)


class HeapTrimmer:
    """Decides when to trim: after SIP traffic, once quiet for EARLY_S and for QUIET_S."""

    def __init__(
        self,
        trim: Callable[[], object] | None = None,
        quiet_s: float = QUIET_S,
        early_s: float = EARLY_S,
    ) -> None:
        self._trim = trim if trim is not None else _libc_trim()
        self._points = sorted({early_s, quiet_s})
        self._count = 0
        self._last_traffic: float | None = None
        self._done = 0  # how many of the points have been trimmed at since the traffic

    def seen(self, count: int, now: float) -> None:
        """Tell the trimmer how many requests the SIP stack has received so far."""
        if count != self._count:
            self._count = count
            self._last_traffic = now
            self._done = 0

    def due(self, now: float) -> bool:
        """Trim now if traffic came and then stopped long enough ago; True if it trimmed."""
        last = self._last_traffic
        if last is None or self._trim is None or self._done >= len(self._points):
            return False
        if now - last < self._points[self._done]:
            return False
        self._done += 1
        self._trim()
        log.debug("heap trimmed after a quiet %.0f s", now - last)
        return True
