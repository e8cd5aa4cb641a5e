"""One token bucket shared by everyone it limits (answers to strangers, SUBSCRIBEs). Pure.

Per-sender limits live in agent.core.ratelimit; these budgets are global on purpose: a stranger
can forge any number of senders, so only a bound on the total bounds what they cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`per_s` tokens a second, at most `burst` saved up; `take` spends one if there is one."""

    def __init__(
        self, per_s: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_s = float(per_s)
        self.burst = float(burst if burst is not None else 2 * per_s)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._stamp) * self.per_s)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
