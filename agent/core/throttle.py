"""Say a lasting problem once, then at most once per interval: a journal line per loop turn
(or per hostile datagram) would bury everything else. Pure; the clock is a parameter.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.core.record import record

# What "at most once a minute" means everywhere the agent repeats itself.
REPEAT_S = 60.0


@record
class Say:
    """Whether to log an occurrence now, and how many were kept quiet before it."""

    now: bool  # log it now
    suppressed: int  # how many times it was not logged since the last time it was


class Throttle:
    """Per key: the first occurrence is said at once, later ones at most every `interval_s`."""

    def __init__(self, interval_s: float = REPEAT_S, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._said: dict[str, tuple[float, int]] = {}  # key -> (when last said, suppressed)

    def say(self, key: str) -> Say:
        now = self._clock()
        last = self._said.get(key)
        if last is None or now - last[0] >= self.interval_s:
            self._said[key] = (now, 0)
            return Say(True, last[1] if last else 0)
        self._said[key] = (last[0], last[1] + 1)
        return Say(False, last[1] + 1)

    def forget(self, key: str) -> None:
        """The problem is over: its next occurrence is said at once again."""
        self._said.pop(key, None)
