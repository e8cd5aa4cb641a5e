"""Which events go so that one more fits: the outbox's bounds as a pure decision.

Bounds: `capacity` events in all, `event_bytes` of topic and payload in all (a share of
outbox.max_disk, agent.adapters.outbox.model.Quota), and, for an event held in memory,
`max_memory` (each counted with its overhead, agent.adapters.outbox.memory.cost). With `refuse` the
new event is refused; otherwise the oldest go: rows on disk before those in memory (they
are older), and only rows in memory when it is memory that is short.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from agent.adapters.outbox.memory import cost
from agent.core.counters import Counters
from agent.core.record import record
from agent.core.throttle import Throttle

log = logging.getLogger(__name__)

Candidates = Iterator[tuple[int, int]]  # (id, size), oldest first


@record
class Limits:
    """The outbox's bounds: events, bytes of events, bytes held in memory, and what full does."""

    capacity: int
    event_bytes: int
    max_memory: int
    refuse: bool


@record
class Fill:
    """What the outbox holds now: events, their bytes, and what memory holds costs."""

    rows: int
    bytes: int
    memory: int


def make_room(
    size: int,
    fill: Fill,
    limits: Limits,
    *,
    to_memory: bool,
    on_disk: Candidates,
    in_memory: Candidates,
) -> list[int] | None:
    """Ids of the oldest rows to drop so that an event of `size` fits; None: refuse it."""
    rows, used, mem = fill.rows, fill.bytes, fill.memory
    drops: list[int] = []
    while True:
        memory_short = to_memory and mem + cost(size) > limits.max_memory
        if not (memory_short or rows + 1 > limits.capacity or used + size > limits.event_bytes):
            return drops
        if limits.refuse:
            return None
        row = None if memory_short else next(on_disk, None)
        from_memory = row is None
        if from_memory:
            row = next(in_memory, None)
        if row is None:
            return None
        row_id, row_size = row
        drops.append(row_id)
        rows, used = rows - 1, used - row_size
        if from_memory:
            mem -= cost(row_size)


class Losses:
    """What the bounds cost: events dropped and refused, counted, kept, and said once a minute.

    `dropped` and `refused` persist in the database (agent.adapters.outbox.store); `dirty` says they
    changed since they were last written.
    """

    def __init__(self, counters: Counters, clock: Callable[[], float]) -> None:
        self._counters = counters
        self._say = Throttle(clock=clock)
        self.dropped = 0
        self.refused = 0
        self.dirty = False

    def add_saved(self, saved: dict[str, int]) -> None:
        """What a database that opened kept from earlier runs."""
        self.dropped += int(saved.get("dropped", 0))
        self.refused += int(saved.get("refused", 0))

    def counts(self) -> dict[str, int]:
        return {"dropped": self.dropped, "refused": self.refused}

    def drop(self, n: int, fill: str) -> None:
        if not n:
            return
        self.dropped += n
        self._counters.bump("outbox.event.dropped", n)
        self.dirty = True
        if (say := self._say.say("dropped")).now:
            log.warning(
                "outbox full (%s): dropped the oldest events, %d dropped so far%s",
                fill, self.dropped, _since(say.suppressed),
            )  # fmt: skip

    def refuse(self, topic: str, why: str, fill: str) -> None:
        self.refused += 1
        self._counters.bump("outbox.event.refused")
        self.dirty = True
        if (say := self._say.say("refused")).now:
            log.warning(
                "outbox refused an event for %s (%s; %s), %d refused so far%s",
                topic, why, fill, self.refused, _since(say.suppressed),
            )  # fmt: skip


def _since(suppressed: int) -> str:
    return f" ({suppressed} more since the last such line)" if suppressed else ""
