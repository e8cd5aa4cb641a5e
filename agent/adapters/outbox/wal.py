"""Keeping the outbox's WAL within its bound (agent.adapters.outbox.model.Quota.wal_bytes).

A checkpoint copies the WAL into the database; the next writer then starts the WAL over,
and SQLite cuts the file back to journal_size_limit. Checkpoints fsync: tens of ms on an
SD card, during which the owner thread would take no SIP, so they run on a thread of their
own, every `CHECKPOINT_EVERY` commits. Under a flood the writer never pauses long enough
for the WAL to start over, so when it outgrows its bound the owner thread truncates it
itself: one stall (2.5-12 ms on the development machine's SSD per 4 MiB) for a bound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)

# Commits between two background checkpoints.
CHECKPOINT_EVERY = 100
# The WAL is cut back to this share of its bound each time it starts over.
WAL_KEEP_SHARE = 4
# How long a truncating checkpoint on the owner thread waits for one under way, at most.
TRUNCATE_WAIT_MS = 500
# Each connection's page cache, KiB. The queue's working set is its few newest and oldest
# pages; sqlite's default (2 MB) fills during a burst and stays in memory for good.
CACHE_KIB = 256


class WalKeeper:
    """Asks for checkpoints and truncates the WAL of one database (owner thread)."""

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._commits = 0
        self._checkpointer: _Checkpointer | None = None  # started when first needed

    def committed(self, db: sqlite3.Connection) -> None:
        """After each commit: a checkpoint now and then, a truncation if it must."""
        self._commits += 1
        if self.path == ":memory:":
            return
        if self._commits >= CHECKPOINT_EVERY:
            self._commits = 0
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self.path)
                self._checkpointer.start()
            self._checkpointer.wanted.set()
        try:
            wal = os.stat(self.path + "-wal").st_size
        except OSError:
            return
        if wal > self.limit:
            self._truncate(db)

    def _truncate(self, db: sqlite3.Connection) -> None:
        """The WAL outgrew its bound (a flood outran the checkpointer): truncate it now.

        A checkpoint under way on the other thread would make this one fail at once: wait
        for it first. Every statement is read to its end (see agent.adapters.outbox.db).
        """
        busy = self._checkpointer.busy if self._checkpointer is not None else threading.Lock()
        if not busy.acquire(timeout=TRUNCATE_WAIT_MS / 1000):
            return
        try:
            db.execute(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}").fetchall()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as err:
            log.warning("outbox %s: WAL not truncated: %s", self.path, err)
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA busy_timeout = 0").fetchall()
            busy.release()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()


class _Checkpointer(threading.Thread):
    """Copies the WAL into the database when asked, off the owner thread.

    It has its own connection and touches nothing else; PASSIVE never blocks the writer.
    Idle, it sleeps on an Event: no periodic wake-ups.
    """

    def __init__(self, path: str) -> None:
        super().__init__(name="outbox-checkpoint", daemon=True)
        self.path = path
        self.wanted = threading.Event()
        self.busy = threading.Lock()  # held while it checkpoints
        self._stopping = False

    def run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}").fetchall()
        except sqlite3.Error as err:
            log.warning("outbox %s: no checkpoints: %s", self.path, err)
            return
        try:
            while True:
                self.wanted.wait()
                self.wanted.clear()
                if self._stopping:
                    return
                with self.busy:
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as err:
                        log.warning("outbox %s: checkpoint failed: %s", self.path, err)
        finally:
            db.close()

    def stop(self) -> None:
        self._stopping = True
        self.wanted.set()
        self.join(5)
