"""The outbox: events wait here until the broker acknowledged them, on disk when the disk
can take them, in memory when it cannot. Degrade, don't die.

pjsua 2.15 answers a MESSAGE with 200 before the agent sees it, so what `add` is given was
already accepted: it must not be lost to a full disk, a read-only or damaged state
directory. The SQLite file (agent.adapters.outbox.db) is tried first; when it fails, the event is
kept in memory, after every event on disk, and goes out to MQTT from there in the same
order. Every `RETRY_S` the disk is tried again (a damaged file is set aside for a new one);
what memory holds is then written to disk, oldest first, and the outbox is durable again.

Bounds, each with a counted drop (or refusal, `when_full = "refuse"`) past it:
- `capacity` events in all (default 10 000);
- the bytes of `outbox.max_disk` (default 16 MiB, see agent.adapters.outbox.model.Quota), the events
  held in memory included, so that all of them fit on disk when it is back;
- `max_memory` (default 4 MiB) for the events held in memory, each counted with its
  overhead (agent.adapters.outbox.memory). Past it the oldest event in memory is dropped (refuse:
  the new one is refused): those are lost, and the log and `B/outbox` say how many.
What is still in memory when the agent stops is lost too, and the log says so.

Only the owner thread may use an Outbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from agent.adapters.outbox.bounds import Fill, Limits, Losses, make_room
from agent.adapters.outbox.db import OutboxDb
from agent.adapters.outbox.disk import SEEN_KEEP_S, Disk
from agent.adapters.outbox.memory import Backlog, cost
from agent.adapters.outbox.model import Quota, StoreError
from agent.core.counters import Counters
from agent.core.ports import Added, Row, event_size

try:
    # CPython's own BLAKE2 (built in): `hashlib` would load OpenSSL for its other hashes, a
    # libcrypto of 3 MB resident where the binding does not bring it, on the first message.
    from _blake2 import blake2b
except ImportError:  # another Python: hashlib has it
    from hashlib import blake2b

log = logging.getLogger(__name__)


def _key(dedupe_key: str) -> bytes:
    # Fixed size whatever a stranger puts in Call-ID: the table of keys is bounded in bytes.
    return blake2b(dedupe_key.encode("utf-8", "replace"), digest_size=16).digest()


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
        self._backlog = Backlog()  # what the disk has not taken yet
        self._disk = Disk(
            path, self.quota, synchronous, counters=self.counters, clock=clock, held=self._held
        )
        self._announced: set[str] = set()
        self.losses = Losses(self.counters, clock)
        self._next_id = 1
        self.renumbered = False  # ids of rows in memory changed: deliveries start over
        self._attach()

    # -- state ----------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        return self.losses.dropped

    @property
    def refused(self) -> int:
        return self.losses.refused

    @property
    def trouble(self) -> str | None:
        """Why events are not durable now ("disk full", ...); None: they are."""
        return self._disk.trouble

    @property
    def max_disk(self) -> int:
        return self.quota.max_disk

    @property
    def durable(self) -> bool:
        return self._disk.trouble is None and not self._backlog.rows

    @property
    def in_memory(self) -> int:
        return len(self._backlog)

    @property
    def memory_bytes(self) -> int:
        return self._backlog.bytes

    @property
    def pending(self) -> int:
        db = self._disk.db
        return (db.pending - len(self._backlog.gone) if db else 0) + len(self._backlog)

    @property
    def pending_bytes(self) -> int:
        db, gone = self._disk.db, sum(self._backlog.gone.values())
        return (db.pending_bytes - gone if db else 0) + self._backlog.raw_bytes

    def disk_bytes(self) -> int:
        """The database and its WAL on disk now."""
        return self._disk.db.disk_bytes() if self._disk.db is not None else 0

    def _held(self) -> str:
        return (
            f"{len(self._backlog)} events, {self._backlog.bytes} of at most {self.max_memory} "
            f"bytes, then the oldest are dropped; {self.losses.dropped} dropped so far"
        )

    # -- the queue ------------------------------------------------------------------------

    def add(
        self, topic: str, payload: bytes, dedupe_key: str | None = None, *, memory_ok: bool = True
    ) -> Added:
        """Keep one event: committed to disk before this returns, or held in memory.

        `memory_ok=False` keeps it only if the disk takes it (`id` is None otherwise): for
        a caller that can still say no to the sender (pjproject 2.16+, deferred answers).
        Its key is then not remembered when it is refused: the sender was told "not kept"
        (500), so a retransmission must be weighed again, never taken for one kept (200).
        """
        key = _key(dedupe_key) if dedupe_key is not None else None
        if key is not None and self._is_seen(key):
            return Added(None, duplicate=True)
        remember = key if memory_ok else None
        size = event_size(topic, payload)
        if size > self.quota.event_bytes:
            return self._refuse(remember, topic, f"{size} bytes, more than the outbox can hold")
        if (db := self._writable()) is not None:
            drops = self._room(size, to_memory=False)
            if drops is None:
                return self._refuse(remember, topic, "full")
            row = Row(self._next_id, topic, payload)
            try:
                db.insert([row], [(key, time.time())] if key else (), delete=drops)
            except StoreError as err:
                self._disk.fail(err)
            else:
                self._next_id += 1
                self.losses.drop(len(drops), self._bounds())
                return Added(row.id, dropped=len(drops), durable=True)
        if not memory_ok:
            return Added(None)
        return self._keep_in_memory(topic, payload, key, size)

    def _keep_in_memory(self, topic: str, payload: bytes, key: bytes | None, size: int) -> Added:
        if cost(size) > self.max_memory:
            return self._refuse(key, topic, "more than outbox.max_memory")
        drops = self._room(size, to_memory=True)
        if drops is None:
            return self._refuse(key, topic, "full, and the disk cannot take more")
        for row_id in drops:
            if self._backlog.pop(row_id) is None and self._disk.db is not None:
                self._backlog.gone.update(self._disk.db.sizes([row_id]))
        self.losses.drop(len(drops), self._bounds())
        row = Row(self._next_id, topic, payload)
        self._next_id += 1
        self._backlog.keep(row)
        if key is not None:
            self._backlog.remember(key)
        return Added(row.id, dropped=len(drops))

    def _room(self, size: int, *, to_memory: bool) -> list[int] | None:
        """Ids of the oldest rows to drop so that one more event of `size` fits; None: refuse."""
        limits = Limits(
            self.capacity, self.quota.event_bytes, self.max_memory, self.when_full == "refuse"
        )
        fill = Fill(self.pending, self.pending_bytes, self._backlog.bytes)
        return make_room(
            size,
            fill,
            limits,
            to_memory=to_memory,
            on_disk=self._disk.db.candidates(self._backlog.gone) if self._disk.db else iter(()),
            in_memory=self._backlog.candidates(),
        )

    def _refuse(self, key: bytes | None, topic: str, why: str) -> Added:
        if key is not None:
            self._backlog.remember(key)  # its retransmission is refused too, not relayed
        self.losses.refuse(topic, why, self._bounds())
        return Added(None, refused=True)

    def _bounds(self) -> str:
        held = self._backlog.bytes
        memory = f", {held} of {self.max_memory} in memory" if self._backlog.rows else ""
        return (
            f"{self.pending} of {self.capacity} events, {self.pending_bytes} of "
            f"{self.quota.event_bytes} bytes{memory}"
        )

    def _is_seen(self, key: bytes) -> bool:
        if key in self._backlog.seen:
            return True
        if self._disk.db is None:
            return False
        try:
            return self._disk.db.is_seen(key)
        except StoreError as err:
            self._disk.fail(err)
            return False

    def replace(self, row_id: int, payload: bytes) -> None:
        """Rewrite a kept row's payload (a command's outcome, once known)."""
        if self._backlog.replace(row_id, payload) or self._disk.db is None:
            return
        if (db := self._writable()) is not None:
            try:
                db.replace(row_id, payload)
                return
            except StoreError as err:
                self._disk.fail(err)
        self._backlog.overrides[row_id] = payload

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to `limit` rows with an id above `row_id`, oldest first."""
        rows: list[Row] = []
        gone, overrides = self._backlog.gone, self._backlog.overrides
        if (db := self._disk.db) is not None:
            cursor = row_id
            while len(rows) < limit:
                try:
                    batch = db.after(cursor, limit - len(rows))
                except StoreError as err:
                    self._disk.fail(err)
                    break
                if not batch:
                    break
                for r in batch:
                    if r.id not in gone:
                        rows.append(Row(r.id, r.topic, overrides.get(r.id, r.payload)))
                cursor = batch[-1].id
        for r in self._backlog.rows.values():
            if len(rows) >= limit:
                break
            if r.id > row_id:
                rows.append(r)
        return rows

    def remove(self, row_ids: Iterable[int]) -> None:
        """Forget delivered rows."""
        on_disk = [i for i in row_ids if self._backlog.pop(i) is None]
        if not on_disk or self._disk.db is None:
            return
        if (db := self._writable()) is not None:
            try:
                db.remove(on_disk)
                return
            except StoreError as err:
                self._disk.fail(err)
        # Kept out of `after` until the disk takes the delete; at worst sent once more.
        self._backlog.gone.update(self._disk.db.sizes(on_disk) if self._disk.db else {})

    # -- what discovery announced -------------------------------------------------------

    def announced(self) -> set[str]:
        return set(self._announced)

    def set_announced(self, topics: Iterable[str]) -> None:
        self._announced = set(topics)
        if (db := self._writable()) is not None:
            try:
                db.set_announced(self._announced)
                return
            except StoreError as err:
                self._disk.fail(err)
        self._backlog.announce = set(self._announced)

    # -- trouble and recovery -------------------------------------------------------------

    def _writable(self) -> OutboxDb | None:
        """The database, if writes go there now (nothing owed to it from memory first)."""
        return self._disk.db if self._disk.ok and not self._backlog.owes_disk else None

    def _attach(self) -> bool:
        """Open the database and take up what it holds (at start, and after trouble)."""
        db = self._disk.open()
        if db is None:
            return False
        self._backlog.forget_disk_work()
        self.losses.add_saved(db.counters)
        if self._backlog.announce is None:
            try:
                self._announced = db.announced()
            except StoreError as err:
                self._disk.fail(err)
        if self._backlog.rows and min(self._backlog.rows) <= db.max_id:
            self._next_id = self._backlog.renumber(db.max_id + 1)
            self.renumbered = True
        self._next_id = max(self._next_id, db.max_id + 1)
        return True

    def maintain(self) -> bool:
        """Once per loop turn: retry the disk, write counters, prune keys. True: ids changed."""
        self.renumbered = False
        if self._disk.trouble is not None or self._backlog.owes_disk:
            if self._disk.retry_due():
                self._recover()
        elif self._disk.db is not None and self._disk.upkeep(
            self.losses.counts() if self.losses.dirty else None
        ):
            self.losses.dirty = False
        self._backlog.prune_seen(SEEN_KEEP_S, self.quota.seen_max)
        return self.renumbered

    def _recover(self) -> None:
        if self._disk.db is None and not self._attach():
            return
        db = self._disk.db
        assert db is not None
        try:
            self._backlog.write_to(db, max(1, self.quota.wal_bytes // 8))
            db.save_counters(self.losses.counts())
        except StoreError as err:
            self._disk.fail(err)
            return
        self.losses.dirty = False
        self._disk.recovered()

    def close(self) -> None:
        if self._disk.trouble is not None or self._backlog.owes_disk:
            self._recover()
        if self._backlog.rows:
            log.error(
                "outbox: %d events held in memory are lost at exit: the disk did not take "
                "them (%s)", len(self._backlog), self._disk.trouble,
            )  # fmt: skip
        self._disk.close(self.losses.counts() if self.losses.dirty else None)
