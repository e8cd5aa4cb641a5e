"""Log lines about floods, rate-limited: the first of a kind at once, then one a minute.

A stranger who sends 10 000 bad requests must not write 10 000 log lines (journald would
drop the owner's own lines with them); the counters (agent.core.counters) keep the exact count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

SUMMARY_EVERY_S = 60.0
# Kinds are chosen by the code (never by a stranger), so this table stays small.


class LogThrottle:
    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = SUMMARY_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every = every_s
        self._clock = clock
        self._state: dict[str, tuple[float, int]] = {}  # kind -> (last logged, not logged since)

    def warning(self, kind: str, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log `msg` now if `kind` was not logged within the last minute, else count it."""
        now = self._clock()
        last, held = self._state.get(kind, (-self._every, 0))
        if now - last < self._every:
            self._state[kind] = (last, held + 1)
            return
        suffix = f" ({held} more like it in the last {self._every:.0f}s)" if held else ""
        self._log.warning(msg + suffix, *args, exc_info=exc_info)
        self._state[kind] = (now, 0)
