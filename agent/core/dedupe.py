"""Requests already handled, when there is no outbox to remember them (no MQTT).

A retransmission normally dies in pjsip's transaction. Under a flood the agent shortens
Timer J (agent.core.sipload), and then a sender's late retransmission arrives as a new request:
`toggle gate` must not run twice. The outbox keeps the keys (Call-ID, CSeq, From tag) on
disk; without one, this keeps them in memory for as long as a sender retransmits (RFC 3261
Timer F, 32 s) and at most `capacity` of them; past it the oldest is forgotten and counted.
Pure: the clock is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

# A UDP sender retransmits a non-INVITE request for 64 x T1 = 32 s; a little more.
KEEP_S = 40.0
# ~200 bytes each: 0.8 MB at most. Commands come from the few allowed senders, rate-limited.
CAPACITY = 4096


class RecentRequests:
    """Request keys seen in the last `keep_s` seconds, oldest first."""

    def __init__(
        self,
        keep_s: float = KEEP_S,
        capacity: int = CAPACITY,
        on_forget: Callable[[], None] = lambda: None,
    ) -> None:
        self.keep_s = keep_s
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._on_forget = on_forget  # a key dropped early to stay within capacity

    def __len__(self) -> int:
        return len(self._seen)

    def repeat(self, key: str | None, now: float) -> bool:
        """True if `key` was seen within `keep_s`; otherwise remember it and return False."""
        if key is None:
            return False  # no Call-ID or CSeq: nothing to recognise it by
        self._expire(now)
        if key in self._seen:
            return True
        self._seen[key] = now
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
            self._on_forget()
        return False

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.keep_s:
                return
            del self._seen[key]
