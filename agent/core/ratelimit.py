"""Per-sender rate limit: token buckets that forged senders cannot evict or drain for a real
user. Pure; the clock is injectable.

A bucket belongs to a sender's identity *and* the address its requests come from. Through
a proxy that authenticates senders every request comes from the proxy, so that is one bucket
per identity. Where nobody authenticates senders (direct mode) a From costs nothing to
forge, but the source address of a request the agent answers does: a forger elsewhere on
the network gets buckets of his own, and real alice, sending from her own address, keeps
hers. Only someone who also forges her address can drain it.

Configured users' buckets live in a table of their own that strangers never touch: a flood
of forged strangers evicts only strangers (`MAX_STRANGERS`, the least recently seen first).
A user's buckets from other addresses are bounded too (`MAX_SOURCES_PER_USER`); evicting
one of those only gives it a fresh burst, never takes tokens from the addresses left.
One-time codes have their own lockout (agent.core.codes), which no number of buckets gets past.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.core.record import record

# Buckets kept for senders who are not configured (forged From addresses are free).
MAX_STRANGERS = 1024
# Buckets kept per configured user, one per address it sent from.
MAX_SOURCES_PER_USER = 16


@dataclass
class _Bucket:
    """One sender's tokens, and when they were last counted."""

    tokens: float
    stamp: float
    refused: bool = False  # refused since it last had a token: the next refusal is silent


@record
class Verdict:
    """Whether a command is taken now, and when the next one would be."""

    allowed: bool
    first_refusal: bool  # the first refusal of a streak: worth one reply, later ones are not
    retry_after_s: float  # when the next command will be taken (0 when allowed)


class RateLimiter:
    """`burst` commands at once, then one every `60 / per_minute` seconds, per sender."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        known: Callable[[str], bool] = lambda identity: False,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._known = known
        self._users: dict[str, OrderedDict[str, _Bucket]] = {}
        self._strangers: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def take(self, sender: str, source: str = "") -> Verdict:
        """Spend one token of the bucket of `sender` at `source` (its host) if there is one."""
        now = self._clock()
        if self._known(sender):
            table: OrderedDict[Any, _Bucket] = self._users.setdefault(sender, OrderedDict())
            key: object = source
            bound = MAX_SOURCES_PER_USER
        else:
            table, key, bound = self._strangers, (sender, source), MAX_STRANGERS
        bucket = table.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.stamp = now
        table[key] = bucket  # most recently used last
        if len(table) > bound:
            table.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.refused = False
            return Verdict(True, False, 0.0)
        first = not bucket.refused
        bucket.refused = True
        wait = (1.0 - bucket.tokens) / self._rate if self._rate > 0 else float("inf")
        return Verdict(False, first, wait)

    def sizes(self) -> tuple[int, int]:
        """(buckets of configured users, buckets of strangers): both bounded."""
        return sum(len(t) for t in self._users.values()), len(self._strangers)
