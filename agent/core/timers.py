"""Timers run by the owner loop: pulse and blink steps happen on the thread that owns the pins.

The loop asks `seconds_to_next()` how long it may wait and calls `run_due()` after each wait.
Pure apart from the clock, which is injectable for tests.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Timers:
    """One-shot callbacks keyed by what they belong to (an output name), cancellable by key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, str, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._live: dict[int, str] = {}  # sequence number -> key, for timers not cancelled

    def call_later(self, delay_s: float, key: str, callback: Callable[[], None]) -> None:
        seq = next(self._seq)
        heapq.heappush(self._heap, (self.clock() + max(0.0, delay_s), seq, key, callback))
        self._live[seq] = key

    def cancel(self, key: str) -> bool:
        """Forget every pending timer of `key`; True if there was one."""
        doomed = [seq for seq, k in self._live.items() if k == key]
        for seq in doomed:
            del self._live[seq]
        return bool(doomed)

    def pending(self, key: str) -> bool:
        return key in self._live.values()

    def seconds_to_next(self) -> float | None:
        """How long until the next timer is due (0 if overdue); None when there is none."""
        while self._heap and self._heap[0][1] not in self._live:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self.clock())

    def run_due(self) -> int:
        """Run every timer that is due, in order; returns how many ran."""
        ran = 0
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            _, seq, key, callback = heapq.heappop(self._heap)
            if self._live.pop(seq, None) is None:
                continue  # cancelled
            ran += 1
            try:
                callback()
            except Exception:  # one broken timer must not stop the loop or the other outputs
                log.exception("timer for %s failed", key)
        return ran
