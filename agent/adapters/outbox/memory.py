"""What the outbox's disk has not taken yet, held in memory until it does
(agent.adapters.outbox.store).

Events (after every event on disk, in id order), their dedupe keys, and the writes owed to
rows already on disk: deletions (delivered or dropped rows, kept out of delivery
meanwhile), new payloads (a command's outcome) and the announced discovery topics.
`write_to` pays the debt once the disk takes writes again, oldest first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from agent.adapters.outbox.db import OutboxDb
from agent.core.ports import Row

# What Python spends on a kept event beyond its topic and payload (619 bytes in all were
# measured for a 326-byte message/in record, scripts/bench_disk.py): counted generously.
MEMORY_ROW_BYTES = 300


def cost(size: int) -> int:
    """What an event of `size` bytes counts against outbox.max_memory."""
    return size + MEMORY_ROW_BYTES


class Backlog:
    """Owner thread only."""

    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}  # events, oldest first
        self.bytes = 0  # what they cost (agent.adapters.outbox.memory.cost)
        self.seen: dict[bytes, float] = {}  # dedupe keys not on disk, oldest first
        self.gone: dict[int, int] = {}  # rows on disk to delete: id -> size
        self.overrides: dict[int, bytes] = {}  # rows on disk to rewrite: id -> payload
        self.announce: set[str] | None = None  # discovery topics to record

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def owes_disk(self) -> bool:
        """Anything at all the disk has yet to take (dedupe keys aside)."""
        return bool(self.rows or self.gone or self.overrides or self.announce is not None)

    @property
    def raw_bytes(self) -> int:
        return self.bytes - MEMORY_ROW_BYTES * len(self.rows)

    def keep(self, row: Row) -> None:
        self.rows[row.id] = row
        self.bytes += cost(row.size)

    def pop(self, row_id: int) -> Row | None:
        row = self.rows.pop(row_id, None)
        if row is not None:
            self.bytes -= cost(row.size)
        return row

    def replace(self, row_id: int, payload: bytes) -> bool:
        """A new payload for a row held here; False if it is not."""
        row = self.rows.get(row_id)
        if row is None:
            return False
        self.rows[row_id] = Row(row_id, row.topic, payload)
        self.bytes += len(payload) - len(row.payload)
        return True

    def candidates(self) -> Iterator[tuple[int, int]]:
        """(id, size) of the events held, oldest first (a snapshot: safe to drop from)."""
        return iter([(r.id, r.size) for r in self.rows.values()])

    def renumber(self, first: int) -> int:
        """Give the events ids from `first` on (a database opened late had higher ones)."""
        rows = list(self.rows.values())
        self.rows = {first + i: Row(first + i, r.topic, r.payload) for i, r in enumerate(rows)}
        return first + len(rows)

    def remember(self, key: bytes) -> None:
        self.seen[key] = time.time()

    def prune_seen(self, keep_s: float, most: int) -> None:
        """Forget keys older than any retransmission, and the oldest past `most`."""
        oldest = time.time() - keep_s
        while self.seen and (len(self.seen) > most or next(iter(self.seen.values())) < oldest):
            del self.seen[next(iter(self.seen))]

    def forget_disk_work(self) -> None:
        """A new database: the rows the deletions and rewrites were for are not in it."""
        self.gone.clear()
        self.overrides.clear()

    def write_to(self, db: OutboxDb, chunk_bytes: int) -> None:
        """Pay what is owed to `db`, oldest first; raises StoreError, keeping the rest."""
        if self.gone:
            db.remove(self.gone)
            self.gone.clear()
        for row_id, payload in list(self.overrides.items()):
            db.replace(row_id, payload)
            del self.overrides[row_id]
        keys = list(self.seen.items())
        while self.rows or keys:
            chunk: list[Row] = []
            size = 0
            for row in self.rows.values():
                if chunk and size + row.size > chunk_bytes:
                    break  # one transaction stays well within the WAL's bound
                chunk.append(row)
                size += row.size
            db.insert(chunk, keys)
            keys = []
            self.seen.clear()
            for row in chunk:
                self.pop(row.id)
        if self.announce is not None:
            db.set_announced(self.announce)
            self.announce = None
