"""The durable outbox: events wait in SQLite until the broker acknowledged them.

One file holds the agent's small state: the outbox itself, the keys of requests already
accepted (so a retransmitted MESSAGE is relayed once, even across a restart), counters, and
the Home Assistant discovery topics announced so far (so removed entities can be cleared).

Durability: WAL with `synchronous = NORMAL` (the default) makes every commit a write into
the WAL file, without fsync. A committed row survives the death of the process (SIGKILL,
a crash, the watchdog) because the kernel has it; a power cut or kernel panic may lose the
last commits. `synchronous = "full"` fsyncs every commit and survives that too, at the
cost of one flash write per message (slow, and wear on an SD card).

Only the owner thread may use an Outbox (sqlite3 enforces it: check_same_thread).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEM_STATE_DIR = "/var/lib/sipagent"
# Commits between two checkpoints (sqlite's own auto-checkpoint default is 1000 pages).
CHECKPOINT_EVERY = 500
# Each connection's page cache, KiB. The queue's working set is its few newest and oldest
# pages; sqlite's default (2 MB) fills during a burst and stays in memory for good.
CACHE_KIB = 256
DB_NAME = "outbox.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: delivery order
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS announced (topic TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class OutboxError(Exception):
    """The outbox database cannot be opened or written; the message says which file and why."""


@dataclass(frozen=True)
class Row:
    """One stored event: its id (delivery order), topic and payload."""

    id: int
    topic: str
    payload: bytes


@dataclass(frozen=True)
class Added:
    """What became of `Outbox.add`: the new row's id, or None with the reason."""

    id: int | None
    duplicate: bool = False
    refused: bool = False
    dropped: int = 0  # rows dropped to make room (when_full = "drop_oldest")


def default_path(environ: dict[str, str] | None = None) -> str:
    """Where the outbox lives when the config does not say.

    systemd's StateDirectory= sets STATE_DIRECTORY; otherwise the system directory when this
    user may write there, else the user's own state directory (a demo run from a terminal).
    """
    env = os.environ if environ is None else environ
    state_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state_dir:
        return os.path.join(state_dir, DB_NAME)
    system = Path(SYSTEM_STATE_DIR)
    if os.access(system, os.W_OK) or (not system.exists() and os.access(system.parent, os.W_OK)):
        return os.path.join(SYSTEM_STATE_DIR, DB_NAME)
    xdg = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME", "/tmp"), ".local", "state")
    return os.path.join(xdg, "sipagent", DB_NAME)


class Outbox:
    """A bounded FIFO of (topic, payload) rows with stable, increasing ids."""

    def __init__(
        self,
        path: str,
        *,
        capacity: int = 10000,
        when_full: str = "drop_oldest",
        synchronous: str = "normal",
    ) -> None:
        self.path = path
        self.capacity = capacity
        self.when_full = when_full
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit, so each commit is where we say.
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
            # A checkpoint fsyncs: tens of ms on an SD card, during which the owner thread
            # would take no SIP. The checkpointer thread does it on its own connection.
            db.execute("PRAGMA wal_autocheckpoint = 0")
            db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            db.executescript(_SCHEMA)
            self.pending = int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
            counters = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except (OSError, sqlite3.Error) as err:
            raise OutboxError(f"cannot open the outbox {path!r}: {err}") from None
        self._db = db
        self.dropped = int(counters.get("dropped", 0))
        self.refused = int(counters.get("refused", 0))
        self._commits = 0
        self._checkpointer: _Checkpointer | None = None  # started when first needed

    def _committed(self) -> None:
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY:
            self._commits = 0
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self.path)
                self._checkpointer.start()
            self._checkpointer.wanted.set()

    # -- the queue ----------------------------------------------------------------------

    def add(self, topic: str, payload: bytes, dedupe_key: str | None = None) -> Added:
        """Store one event durably (committed before this returns), unless it is a duplicate."""
        db = self._db
        db.execute("BEGIN")
        try:
            if dedupe_key is not None:
                cur = db.execute(
                    "INSERT OR IGNORE INTO seen (key, at) VALUES (?, ?)", (dedupe_key, time.time())
                )
                if cur.rowcount == 0:
                    db.execute("ROLLBACK")
                    return Added(None, duplicate=True)
            dropped = 0
            if self.pending >= self.capacity:
                if self.when_full == "refuse":
                    self.refused += 1
                    self._count("refused", self.refused)
                    db.execute("COMMIT")  # the key stays seen: a retransmission is refused too
                    return Added(None, refused=True)
                excess = self.pending - self.capacity + 1
                cur = db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                    (excess,),
                )
                dropped = cur.rowcount
                self.dropped += dropped
                self._count("dropped", self.dropped)
            cur = db.execute("INSERT INTO outbox (topic, payload) VALUES (?, ?)", (topic, payload))
            db.execute("COMMIT")
            self._committed()
        except sqlite3.Error as err:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutboxError(f"cannot store into the outbox {self.path!r}: {err}") from None
        self.pending += 1 - dropped
        assert cur.lastrowid is not None
        return Added(cur.lastrowid, dropped=dropped)

    def replace(self, row_id: int, payload: bytes) -> None:
        """Rewrite a stored row's payload (a command's outcome, once known)."""
        try:
            self._db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (payload, row_id))
            self._committed()
        except sqlite3.Error as err:
            raise OutboxError(f"cannot update the outbox {self.path!r}: {err}") from None

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to `limit` rows with an id above `row_id`, oldest first."""
        rows = self._db.execute(
            "SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (row_id, limit),
        ).fetchall()
        return [Row(i, t, bytes(p)) for i, t, p in rows]

    def remove(self, row_ids: Sequence[int]) -> None:
        """Forget delivered rows, all in one transaction."""
        if not row_ids:
            return
        db = self._db
        try:
            db.execute("BEGIN")
            cur = db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in row_ids))
            db.execute("COMMIT")
            self._committed()
        except sqlite3.Error as err:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutboxError(f"cannot update the outbox {self.path!r}: {err}") from None
        self.pending -= max(cur.rowcount, 0)

    def forget_seen(self, older_than_s: float) -> None:
        """Drop dedupe keys older than any retransmission could be (SIP gives up after 32 s)."""
        self._db.execute("DELETE FROM seen WHERE at < ?", (time.time() - older_than_s,))

    def _count(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- what discovery announced -------------------------------------------------------

    def announced(self) -> set[str]:
        return {t for (t,) in self._db.execute("SELECT topic FROM announced")}

    def set_announced(self, topics: Iterable[str]) -> None:
        db = self._db
        db.execute("BEGIN")
        db.execute("DELETE FROM announced")
        db.executemany("INSERT INTO announced (topic) VALUES (?)", ((t,) for t in topics))
        db.execute("COMMIT")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        try:
            # Fold the WAL back into the database: a clean stop leaves one file behind.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as err:
            log.warning("outbox %s: final checkpoint failed: %s", self.path, err)
        self._db.close()


class _Checkpointer(threading.Thread):
    """Copies the WAL into the database when asked, off the owner thread.

    It has its own connection and touches nothing else; PASSIVE never blocks the writer.
    Idle, it sleeps on an Event: no periodic wake-ups.
    """

    def __init__(self, path: str) -> None:
        super().__init__(name="outbox-checkpoint", daemon=True)
        self.path = path
        self.wanted = threading.Event()
        self._stopping = False

    def run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        try:
            while True:
                self.wanted.wait()
                self.wanted.clear()
                if self._stopping:
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as err:
                    log.warning("outbox %s: checkpoint failed: %s", self.path, err)
        finally:
            db.close()

    def stop(self) -> None:
        self._stopping = True
        self.wanted.set()
        self.join(5)
