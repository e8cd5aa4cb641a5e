"""Giving memory back to the system after a burst of SIP traffic.

pjsip keeps every completed non-INVITE transaction for Timer J (32 s over UDP) to absorb
retransmissions: a burst of 2000 MESSAGE/s holds some 64 000 of them, ~220 MB. When they
expire, glibc keeps the freed heap (measured: 250 MB resident long after a flood, 34 MB
after `malloc_trim(0)`), so a device would carry its busiest minute's memory for good.
The owner loop asks `due()` each turn and trims once traffic has been quiet that long.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# Timer J (64 * T1 = 32 s) plus a margin: by then the burst's transactions are gone.
QUIET_S = 40.0


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
    """Decides when to trim: after SIP traffic, once it has been quiet for QUIET_S."""

    def __init__(self, trim: Callable[[], object] | None = None, quiet_s: float = QUIET_S) -> None:
        self._trim = trim if trim is not None else _libc_trim()
        self._quiet_s = quiet_s
        self._count = 0
        self._last_traffic: float | None = None

    def seen(self, count: int, now: float) -> None:
        """Tell the trimmer how many requests the SIP stack has received so far."""
        if count != self._count:
            self._count = count
            self._last_traffic = now

    def due(self, now: float) -> bool:
        """Trim now if traffic came and then stopped long enough ago; True if it trimmed."""
        last = self._last_traffic
        if last is None or now - last < self._quiet_s or self._trim is None:
            return False
        self._last_traffic = None
        self._trim()
        log.debug("heap trimmed after a quiet %.0f s", now - last)
        return True
