"""The outbox's database as it is now: open or not, in trouble or not, and when to try again.

A failing store says so once (an error in the log), then at most once a minute, and once
more when it is durable again; `trouble` is what `STATUS=`, `B/outbox` and `status` show.
A damaged database is closed at once: the next try sets it aside and starts a new one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from agent.adapters.outbox.db import OutboxDb, open_db
from agent.adapters.outbox.model import Quota, StoreError
from agent.core.counters import Counters
from agent.core.throttle import Throttle

log = logging.getLogger(__name__)

RETRY_S = 5.0  # how often a store that failed is tried again
# How long a SIP retransmission can follow its original (RFC 3261 Timer F/J: 64*T1), doubled.
SEEN_KEEP_S = 128.0
COUNTERS_EVERY_S = 1.0  # dropped/refused are written at most this often
_TROUBLE = {"full": "disk full", "unusable": "not writable", "corrupt": "database damaged"}


class Disk:
    """Owner thread only."""

    def __init__(
        self,
        path: str,
        quota: Quota,
        synchronous: str,
        *,
        counters: Counters,
        clock: Callable[[], float],
        held: Callable[[], str],
    ) -> None:
        self.path = path
        self.quota = quota
        self._synchronous = synchronous
        self._counters = counters
        self._clock = clock
        self._held = held  # what memory holds meanwhile, for the log
        self.db: OutboxDb | None = None
        self.trouble: str | None = None  # why events are not durable now; None: they are
        self._retry_at = 0.0
        self._counters_at = -math.inf
        self._seen_pruned_at = clock()
        self._say = Throttle(clock=clock)

    @property
    def ok(self) -> bool:
        return self.db is not None and self.trouble is None

    def open(self) -> OutboxDb | None:
        try:
            self.db = open_db(self.path, self.quota, self._synchronous)
        except StoreError as err:
            self.fail(err)
        return self.db

    def fail(self, err: StoreError) -> None:
        """A sqlite call failed: not durable until a retry succeeds."""
        first = self.trouble is None
        self.trouble = _TROUBLE[err.kind]
        self._retry_at = self._clock() + RETRY_S
        self._counters.bump("outbox.store.failed")
        if err.kind == "corrupt" and self.db is not None:
            self.db.close()  # the next try sets it aside and starts a new one
            self.db = None
        say = self._say.say("trouble")
        if first:
            log.error(
                "outbox not durable: %s; events are kept in memory (%s) and written to disk "
                "when it takes them again; SIP and GPIO go on",
                err, self._held(),
            )  # fmt: skip
        elif say.now:
            more = f" ({say.suppressed} more since the last such line)" if say.suppressed else ""
            log.error("outbox still not durable: %s; %s%s", err, self._held(), more)

    def retry_due(self) -> bool:
        """Time to try again (and the try after this one is RETRY_S away)."""
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + RETRY_S
        return True

    def recovered(self) -> None:
        if self.trouble is not None:
            log.warning("outbox durable again (%s): what memory held is on disk", self.path)
            self.trouble = None
            self._say.forget("trouble")

    def upkeep(self, counts: dict[str, int] | None) -> bool:
        """While healthy: counters (if given) once a second, old dedupe keys. True: saved."""
        assert self.db is not None
        now = self._clock()
        saved = False
        try:
            if counts is not None and now - self._counters_at >= COUNTERS_EVERY_S:
                self._counters_at = now
                self.db.save_counters(counts)
                saved = True
            if now - self._seen_pruned_at >= SEEN_KEEP_S:
                self._seen_pruned_at = now
                self.db.forget_seen(SEEN_KEEP_S)
        except StoreError as err:
            self.fail(err)
        return saved

    def close(self, counts: dict[str, int] | None) -> None:
        if self.db is None:
            return
        if counts is not None:
            try:
                self.db.save_counters(counts)
            except StoreError as err:
                log.warning("outbox counters not saved: %s", err)
        self.db.close()
        self.db = None
