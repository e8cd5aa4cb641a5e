"""Counts of what the agent refused, dropped, limited or failed to handle.

One instance per run, shared by the owner thread's parts (the SIP adapter, the dispatcher,
the bridge). Counting happens on the owner thread only, so no lock is needed; a reader on
another thread (a status request) takes a snapshot through the inbox.
"""

from __future__ import annotations

from collections import Counter


class Counters:
    """Named event counts, e.g. ``counters.bump("sip.invite.refused")``.

    Names are dotted, lower-case, and say what happened to what: ``<source>.<thing>.<fate>``.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def bump(self, name: str, n: int = 1) -> None:
        self._counts[name] += n

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every non-zero count, sorted by name."""
        return {name: count for name, count in sorted(self._counts.items()) if count}
