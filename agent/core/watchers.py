"""Presence watchers the agent serves, counted against their bounds. Pure.

pjsua keeps the subscriptions themselves and tells the application nothing when one ends;
this table follows them from the SUBSCRIBEs the gate sees (agent.core.gate): admitted, refreshed,
unsubscribed (Expires: 0) or expired. A subscription pjsua ended on its own (its NOTIFYs
went unanswered) still counts until its expiry: at most pjsip's longest (600 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# pjsip's presence package grants at most this (PJSIP_PRES_DEFAULT_EXPIRES), and that much
# when the SUBSCRIBE names no Expires.
LONGEST_S = 600


class Watchers:
    def __init__(
        self, total: int, per_sender: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total = total
        self.per_sender = per_sender
        self._clock = clock
        self._live: dict[str, tuple[str, float]] = {}  # Call-ID -> (sender, expires at)

    def admit(self, call_id: str, sender: str, expires: int | None) -> str | None:
        """Count a new subscription in; the reason it is refused, or None."""
        now = self._clock()
        self._prune(now)
        if call_id in self._live:  # the initial SUBSCRIBE again (a retransmission)
            return None
        if sum(1 for s, _ in self._live.values() if s == sender) >= self.per_sender:
            return f"too many subscriptions from {sender} (sip.limits.watchers_per_sender)"
        if len(self._live) >= self.total:
            return "too many watchers (sip.limits.watchers)"
        self._live[call_id] = (sender, now + _granted(expires))
        return None

    def refreshed(self, call_id: str, expires: int | None) -> None:
        """A SUBSCRIBE inside the dialog: a refresh, or (Expires: 0) the end of it."""
        entry = self._live.get(call_id)
        if entry is None:
            return
        if expires == 0:
            del self._live[call_id]
        else:
            self._live[call_id] = (entry[0], self._clock() + _granted(expires))

    def count(self, sender: str | None = None) -> int:
        self._prune(self._clock())
        if sender is None:
            return len(self._live)
        return sum(1 for s, _ in self._live.values() if s == sender)

    def _prune(self, now: float) -> None:
        for call_id in [c for c, (_, at) in self._live.items() if at <= now]:
            del self._live[call_id]


def _granted(expires: int | None) -> float:
    return float(LONGEST_S if expires is None else min(expires, LONGEST_S))
