"""Per-sender rate limit: a token bucket per identity. Pure; the clock is injectable."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Forged From addresses are free in direct mode: bound the table, forget the oldest.
MAX_SENDERS = 1024


@dataclass
class _Bucket:
    """One sender's tokens, and when they were last counted."""

    tokens: float
    stamp: float
    refused: bool = False  # refused since it last had a token: the next refusal is silent


@dataclass(frozen=True)
class Verdict:
    """Whether a command is taken now, and when the next one would be."""

    allowed: bool
    first_refusal: bool  # the first refusal of a streak: worth one reply, later ones are not
    retry_after_s: float  # when the next command will be taken (0 when allowed)


class RateLimiter:
    """`burst` commands at once, then one every `60 / per_minute` seconds, per sender."""

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, sender: str) -> Verdict:
        """Spend one token of `sender`'s bucket if there is one."""
        now = self._clock()
        bucket = self._buckets.pop(sender, None)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.stamp = now
        self._buckets[sender] = bucket  # most recently used last
        if len(self._buckets) > MAX_SENDERS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.refused = False
            return Verdict(True, False, 0.0)
        first = not bucket.refused
        bucket.refused = True
        wait = (1.0 - bucket.tokens) / self._rate if self._rate > 0 else float("inf")
        return Verdict(False, first, wait)
