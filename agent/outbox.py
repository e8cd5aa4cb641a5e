"""The outbox: events wait here until the broker acknowledged them, on disk when the disk
can take them, in memory when it cannot. Degrade, don't die.

pjsua 2.15 answers a MESSAGE with 200 before the agent sees it, so what `add` is given was
already accepted: it must not be lost to a full disk, a read-only or damaged state
directory. The SQLite file (agent.outbox_db) is tried first; when it fails, the event is
kept in memory, after every event on disk, and goes out to MQTT from there in the same
order. Every `RETRY_S` the disk is tried again (a damaged file is set aside for a new one);
what memory holds is then written to disk, oldest first, and the outbox is durable again.

Bounds, each with a counted drop (or refusal, `when_full = "refuse"`) past it:
- `capacity` events in all (default 10 000);
- the bytes of `outbox.max_disk` (default 16 MiB, see agent.outbox_db.Quota), the events
  held in memory included, so that all of them fit on disk when it is back;
- `max_memory` (default 4 MiB) for the events held in memory, each counted with
  `MEMORY_ROW_BYTES` of overhead. Past it the oldest event in memory is dropped (refuse:
  the new one is refused): those are lost, and the log and `B/outbox` say how many.
What is still in memory when the agent stops is lost too, and the log says so.

Only the owner thread may use an Outbox.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from agent.counters import Counters
from agent.outbox_db import OutboxDb, OutboxError, Quota, Row, StoreError, event_size, open_db
from agent.statedir import default_path
from agent.throttle import Throttle

__all__ = ["Added", "Outbox", "OutboxError", "Row", "default_path"]

log = logging.getLogger(__name__)

RETRY_S = 5.0  # how often an outbox that cannot store tries its disk again
# How long a SIP retransmission can follow its original (RFC 3261 Timer F/J: 64*T1), doubled.
SEEN_KEEP_S = 128.0
COUNTERS_EVERY_S = 1.0  # dropped/refused are written at most this often
MEMORY_ROW_BYTES = 300  # what Python spends on a kept event beyond its topic and payload
_TROUBLE = {"full": "disk full", "unusable": "not writable", "corrupt": "database damaged"}


@dataclass(frozen=True)
class Added:
    """What became of `Outbox.add`: the new row's id, or None with the reason."""

    id: int | None
    duplicate: bool = False
    refused: bool = False
    dropped: int = 0  # older events dropped to make room (when_full = "drop_oldest")
    durable: bool = False  # committed to disk; False: held in memory (or not kept at all)


def _key(dedupe_key: str) -> bytes:
    # Fixed size whatever a stranger puts in Call-ID: the table of keys is bounded in bytes.
    return hashlib.blake2b(dedupe_key.encode("utf-8", "replace"), digest_size=16).digest()


class Outbox:
    """A bounded FIFO of (topic, payload) rows with stable, increasing ids."""

    def __init__(
        self,
        path: str,
        *,
        capacity: int = 10000,
        when_full: str = "drop_oldest",
        synchronous: str = "normal",
        max_disk: int = 16 * 1024**2,
        max_memory: int = 4 * 1024**2,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.capacity = capacity
        self.when_full = when_full
        self.quota = Quota(max_disk)
        self.max_memory = max_memory
        self.counters = counters if counters is not None else Counters()
        self._synchronous = synchronous
        self._clock = clock
        self._db: OutboxDb | None = None
        self.trouble: str | None = None  # why events are not durable now; None: they are
        self._memory: dict[int, Row] = {}  # events the disk did not take, oldest first
        self.memory_bytes = 0  # what they cost, MEMORY_ROW_BYTES each included
        self._seen: dict[bytes, float] = {}  # dedupe keys not on disk (yet)
        self._gone: dict[int, int] = {}  # rows on disk delivered or dropped, not yet deleted
        self._overrides: dict[int, bytes] = {}  # new payloads of rows on disk, not yet written
        self._announced: set[str] = set()
        self._announce_pending = False
        self.dropped = 0
        self.refused = 0
        self._counters_dirty = False
        self._counters_at = -math.inf
        self._retry_at = 0.0
        self._seen_pruned_at = clock()
        self._say = Throttle(clock=clock)
        self._next_id = 1
        self.renumbered = False  # ids of rows in memory changed: deliveries start over
        self._open()

    # -- state ----------------------------------------------------------------------------

    @property
    def durable(self) -> bool:
        return self.trouble is None and not self._memory

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    @property
    def pending(self) -> int:
        on_disk = self._db.pending - len(self._gone) if self._db is not None else 0
        return on_disk + len(self._memory)

    @property
    def pending_bytes(self) -> int:
        on_disk = self._db.pending_bytes - sum(self._gone.values()) if self._db else 0
        return on_disk + self.memory_bytes - MEMORY_ROW_BYTES * len(self._memory)

    def disk_bytes(self) -> int:
        """The database and its WAL on disk now."""
        return self._db.disk_bytes() if self._db is not None else 0

    def _disk_ok(self) -> bool:
        return self._db is not None and self.durable

    # -- the queue ------------------------------------------------------------------------

    def add(
        self, topic: str, payload: bytes, dedupe_key: str | None = None, *, memory_ok: bool = True
    ) -> Added:
        """Keep one event: committed to disk before this returns, or held in memory.

        `memory_ok=False` keeps it only if the disk takes it (`id` is None otherwise): for
        a caller that can still say no to the sender (pjproject 2.16+, deferred answers).
        """
        key = _key(dedupe_key) if dedupe_key is not None else None
        if key is not None and self._is_seen(key):
            return Added(None, duplicate=True)
        size = event_size(topic, payload)
        if size > self.quota.event_bytes:
            return self._refuse(key, topic, f"{size} bytes, more than the outbox can hold")
        if self._disk_ok():
            assert self._db is not None
            drops = self._room(size, to_memory=False)
            if drops is None:
                return self._refuse(key, topic, "full")
            row = Row(self._next_id, topic, payload)
            try:
                self._db.insert([row], [(key, time.time())] if key else (), delete=drops)
            except StoreError as err:
                self._degrade(err)
            else:
                self._next_id += 1
                self._count_dropped(len(drops))
                return Added(row.id, dropped=len(drops), durable=True)
        if not memory_ok:
            return Added(None)
        return self._keep_in_memory(topic, payload, key, size)

    def _keep_in_memory(self, topic: str, payload: bytes, key: bytes | None, size: int) -> Added:
        if size + MEMORY_ROW_BYTES > self.max_memory:
            return self._refuse(key, topic, "more than outbox.max_memory")
        drops = self._room(size, to_memory=True)
        if drops is None:
            return self._refuse(key, topic, "full, and the disk cannot take more")
        for row_id in drops:
            self._drop_one(row_id)
        self._count_dropped(len(drops))
        row = Row(self._next_id, topic, payload)
        self._next_id += 1
        self._memory[row.id] = row
        self.memory_bytes += size + MEMORY_ROW_BYTES
        if key is not None:
            self._seen[key] = time.time()
        return Added(row.id, dropped=len(drops))

    def _room(self, size: int, *, to_memory: bool) -> list[int] | None:
        """Ids of the oldest rows to drop so that one more event of `size` fits; None: refuse."""
        rows, used, mem = self.pending, self.pending_bytes, self.memory_bytes
        drops: list[int] = []
        on_disk = self._oldest_on_disk()
        in_memory = ((r.id, r.size) for r in list(self._memory.values()))
        while True:
            memory_short = to_memory and mem + size + MEMORY_ROW_BYTES > self.max_memory
            if not (
                memory_short or rows + 1 > self.capacity or used + size > self.quota.event_bytes
            ):
                return drops
            if self.when_full == "refuse":
                return None
            # Rows on disk are older than those in memory; only memory frees memory.
            row = next(in_memory, None) if memory_short else next(on_disk, None)
            if row is None and not memory_short:
                row = next(in_memory, None)
            if row is None:
                return None
            row_id, row_size = row
            drops.append(row_id)
            rows, used = rows - 1, used - row_size
            if row_id in self._memory:
                mem -= row_size + MEMORY_ROW_BYTES

    def _oldest_on_disk(self) -> Iterator[tuple[int, int]]:
        """(id, size) of the pending rows on disk (if readable), oldest first."""
        if self._db is None:
            return
        cursor = 0
        while True:
            try:
                batch = self._db.oldest(cursor, 64)
            except StoreError:
                return
            if not batch:
                return
            yield from (r for r in batch if r[0] not in self._gone)
            cursor = batch[-1][0]

    def _drop_one(self, row_id: int) -> None:
        row = self._memory.pop(row_id, None)
        if row is not None:
            self.memory_bytes -= row.size + MEMORY_ROW_BYTES
        elif self._db is not None:
            self._gone.update(self._db.sizes([row_id]))

    def _count_dropped(self, n: int) -> None:
        if n:
            self.dropped += n
            self.counters.bump("outbox.event.dropped", n)
            self._counters_dirty = True
            if (say := self._say.say("dropped")).now:
                log.warning(
                    "outbox full (%s): dropped the oldest events, %d dropped so far%s",
                    self._bounds(), self.dropped, _since(say.suppressed),
                )  # fmt: skip

    def _refuse(self, key: bytes | None, topic: str, why: str) -> Added:
        if key is not None:
            self._seen[key] = time.time()  # its retransmission is refused too, not relayed
        self.refused += 1
        self.counters.bump("outbox.event.refused")
        self._counters_dirty = True
        if (say := self._say.say("refused")).now:
            log.warning(
                "outbox refused an event for %s (%s; %s), %d refused so far%s",
                topic, why, self._bounds(), self.refused, _since(say.suppressed),
            )  # fmt: skip
        return Added(None, refused=True)

    def _bounds(self) -> str:
        memory = f", {self.memory_bytes} of {self.max_memory} in memory" if self._memory else ""
        return (
            f"{self.pending} of {self.capacity} events, {self.pending_bytes} of "
            f"{self.quota.event_bytes} bytes{memory}"
        )

    def _is_seen(self, key: bytes) -> bool:
        if key in self._seen:
            return True
        if self._db is None:
            return False
        try:
            return self._db.is_seen(key)
        except StoreError as err:
            self._degrade(err)
            return False

    def replace(self, row_id: int, payload: bytes) -> None:
        """Rewrite a kept row's payload (a command's outcome, once known)."""
        row = self._memory.get(row_id)
        if row is not None:
            self._memory[row_id] = Row(row_id, row.topic, payload)
            self.memory_bytes += len(payload) - len(row.payload)
            return
        if self._db is None:
            return
        if self._disk_ok():
            try:
                self._db.replace(row_id, payload)
                return
            except StoreError as err:
                self._degrade(err)
        self._overrides[row_id] = payload

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to `limit` rows with an id above `row_id`, oldest first."""
        rows: list[Row] = []
        if self._db is not None:
            cursor = row_id
            while len(rows) < limit:
                try:
                    batch = self._db.after(cursor, limit - len(rows))
                except StoreError as err:
                    self._degrade(err)
                    break
                if not batch:
                    break
                for r in batch:
                    if r.id not in self._gone:
                        rows.append(Row(r.id, r.topic, self._overrides.get(r.id, r.payload)))
                cursor = batch[-1].id
        for r in self._memory.values():
            if len(rows) >= limit:
                break
            if r.id > row_id:
                rows.append(r)
        return rows

    def remove(self, row_ids: Iterable[int]) -> None:
        """Forget delivered rows."""
        on_disk = []
        for row_id in row_ids:
            row = self._memory.pop(row_id, None)
            if row is not None:
                self.memory_bytes -= row.size + MEMORY_ROW_BYTES
            else:
                on_disk.append(row_id)
        if not on_disk or self._db is None:
            return
        if self._disk_ok():
            try:
                self._db.remove(on_disk)
                return
            except StoreError as err:
                self._degrade(err)
        # Kept out of `after` until the disk takes the delete; at worst sent once more.
        self._gone.update(self._db.sizes(on_disk))

    # -- what discovery announced -------------------------------------------------------

    def announced(self) -> set[str]:
        return set(self._announced)

    def set_announced(self, topics: Iterable[str]) -> None:
        self._announced = set(topics)
        self._announce_pending = True
        if self._disk_ok():
            assert self._db is not None
            try:
                self._db.set_announced(self._announced)
                self._announce_pending = False
            except StoreError as err:
                self._degrade(err)

    # -- trouble and recovery -------------------------------------------------------------

    def _open(self) -> bool:
        try:
            db = open_db(self.path, self.quota, self._synchronous)
        except StoreError as err:
            self._degrade(err)
            return False
        self._db = db
        self._gone.clear()
        self._overrides.clear()
        self.dropped += int(db.counters.get("dropped", 0))
        self.refused += int(db.counters.get("refused", 0))
        if not self._announce_pending:
            try:
                self._announced = db.announced()
            except StoreError as err:
                self._degrade(err)
        if self._memory and min(self._memory) <= db.max_id:
            self._renumber(db.max_id + 1)
        self._next_id = max(self._next_id, db.max_id + 1)
        return True

    def _renumber(self, first: int) -> None:
        rows = list(self._memory.values())
        self._memory = {first + i: Row(first + i, r.topic, r.payload) for i, r in enumerate(rows)}
        self._next_id = first + len(rows)
        self.renumbered = True

    def _degrade(self, err: StoreError) -> None:
        first = self.trouble is None
        self.trouble = _TROUBLE[err.kind]
        self._retry_at = self._clock() + RETRY_S
        self.counters.bump("outbox.store.failed")
        if err.kind == "corrupt" and self._db is not None:
            self._db.close()  # the next try sets it aside and starts a new one
            self._db = None
        say = self._say.say("trouble")
        if first:
            log.error(
                "outbox not durable: %s; events are kept in memory (at most %d bytes, then "
                "the oldest are dropped) and written to disk when it takes them again; SIP "
                "and GPIO go on",
                err, self.max_memory,
            )  # fmt: skip
        elif say.now:
            log.error(
                "outbox still not durable: %s; %d events in memory (%d bytes), %d dropped%s",
                err, len(self._memory), self.memory_bytes, self.dropped, _since(say.suppressed),
            )  # fmt: skip

    def maintain(self) -> bool:
        """Once per loop turn: retry the disk, write counters, prune keys. True: ids changed."""
        now = self._clock()
        self.renumbered = False
        if self.trouble is not None or self._memory or self._gone or self._overrides:
            if now >= self._retry_at:
                self._recover(now)
        elif self._db is not None:
            self._upkeep(now)
        self._prune_seen_in_memory()
        return self.renumbered

    def _recover(self, now: float) -> None:
        self._retry_at = now + RETRY_S
        if self._db is None and not self._open():
            return
        db = self._db
        assert db is not None
        chunk_bytes = max(1, self.quota.wal_bytes // 8)  # one transaction stays well in the WAL
        try:
            if self._gone:
                db.remove(self._gone)
                self._gone.clear()
            for row_id, payload in list(self._overrides.items()):
                db.replace(row_id, payload)
                del self._overrides[row_id]
            keys = [(k, at) for k, at in self._seen.items()]
            while self._memory or keys:
                chunk, size = [], 0
                for row in self._memory.values():
                    if chunk and size + row.size > chunk_bytes:
                        break
                    chunk.append(row)
                    size += row.size
                db.insert(chunk, keys)
                keys = []
                self._seen.clear()
                for row in chunk:
                    del self._memory[row.id]
                    self.memory_bytes -= row.size + MEMORY_ROW_BYTES
            if self._announce_pending:
                db.set_announced(self._announced)
                self._announce_pending = False
            db.save_counters({"dropped": self.dropped, "refused": self.refused})
        except StoreError as err:
            self._degrade(err)
            return
        if self.trouble is not None:
            log.warning("outbox durable again (%s): what memory held is on disk", self.path)
            self.trouble = None
            self._say.forget("trouble")
        self._counters_dirty = False

    def _upkeep(self, now: float) -> None:
        db = self._db
        assert db is not None
        try:
            if self._counters_dirty and now - self._counters_at >= COUNTERS_EVERY_S:
                self._counters_at = now
                db.save_counters({"dropped": self.dropped, "refused": self.refused})
                self._counters_dirty = False
            if now - self._seen_pruned_at >= SEEN_KEEP_S:
                self._seen_pruned_at = now
                db.forget_seen(SEEN_KEEP_S)
        except StoreError as err:
            self._degrade(err)

    def _prune_seen_in_memory(self) -> None:
        if not self._seen:
            return
        oldest = time.time() - SEEN_KEEP_S
        while self._seen and (
            len(self._seen) > self.quota.seen_max or next(iter(self._seen.values())) < oldest
        ):
            del self._seen[next(iter(self._seen))]

    def close(self) -> None:
        if not self.durable or self._gone or self._overrides:
            self._recover(self._clock())
        if self._memory:
            log.error(
                "outbox: %d events held in memory are lost at exit: the disk did not take "
                "them (%s)", len(self._memory), self.trouble,
            )  # fmt: skip
        if self._db is not None:
            if self._counters_dirty:
                try:
                    self._db.save_counters({"dropped": self.dropped, "refused": self.refused})
                except StoreError as err:
                    log.warning("outbox counters not saved: %s", err)
            self._db.close()
            self._db = None


def _since(suppressed: int) -> str:
    return f" ({suppressed} more since the last such line)" if suppressed else ""
