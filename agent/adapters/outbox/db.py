"""The outbox's SQLite file: every sqlite call of the outbox is here, and every failure of one
becomes a `StoreError` that says what kind of trouble it is (full, unusable, corrupt).

Every query is read to its end (`fetchall`), PRAGMAs included: a statement left open holds
a read snapshot, and then no checkpoint can finish and the WAL never starts over. (That,
on the checkpointer's connection, is how 20 000 refused events once grew it to 420 MB.)

Bytes on disk are bounded by `Quota` (agent.adapters.outbox.model): `max_page_count` for the
database, agent.adapters.outbox.wal for the WAL.

Durability: WAL with `synchronous = NORMAL` (the default) makes every commit a write into
the WAL file, without fsync. A committed row survives the death of the process (SIGKILL,
a crash, the watchdog) because the kernel has it; a power cut or kernel panic may lose the
last commits. `synchronous = "full"` fsyncs every commit and survives that too, at the
cost of one flash write per message (slow, and wear on an SD card).

Only the owner thread may use an OutboxDb (sqlite3 enforces it: check_same_thread).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Container, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from agent.adapters.outbox.model import OutboxError, Quota, StoreError, classify
from agent.adapters.outbox.wal import CACHE_KIB, WAL_KEEP_SHARE, WalKeeper
from agent.core.ports import Row

__all__ = ["OutboxDb", "OutboxError", "StoreError", "open_db", "set_aside"]

log = logging.getLogger(__name__)


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
# A database whose tables lack these columns is not ours (or is damaged): set aside.
_SHAPE = (
    "SELECT id, topic, payload FROM outbox LIMIT 0",
    "SELECT key, at FROM seen LIMIT 0",
    "SELECT key, value FROM meta LIMIT 0",
    "SELECT topic FROM announced LIMIT 0",
)
_SIZE = "length(CAST(topic AS BLOB)) + length(payload)"


class OutboxDb:
    """One open outbox database; raises StoreError, never sqlite3 or OS errors."""

    def __init__(self, path: str, quota: Quota, synchronous: str = "normal") -> None:
        self.path = path
        self.quota = quota
        try:
            self._db = self._connect(path, quota, synchronous)
            one = self._one
            self.pending = int(one("SELECT count(*) FROM outbox"))
            self.pending_bytes = int(one(f"SELECT coalesce(sum({_SIZE}), 0) FROM outbox"))
            self.max_id = int(one("SELECT coalesce(max(id), 0) FROM outbox"))
            seq = "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
            for (last,) in self._db.execute(seq).fetchall():
                self.max_id = max(self.max_id, int(last))  # ids are never reused
            self.seen_count = int(one("SELECT count(*) FROM seen"))
            self.counters = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.Error, OSError) as err:
            raise self._error("cannot open", err) from None
        self._wal = WalKeeper(path, quota.wal_bytes)

    @staticmethod
    def _connect(path: str, quota: Quota, synchronous: str) -> sqlite3.Connection:
        if path != ":memory:":
            # os.path, not pathlib: nothing else the agent runs needs pathlib (agent.lean).
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if os.path.lexists(path) and not os.path.isfile(path):
                raise StoreError("unusable", f"outbox {path!r} exists and is not a file")
        # Autocommit mode: transactions are explicit, so each commit is where we say.
        db = sqlite3.connect(path, isolation_level=None)
        try:
            check = db.execute("PRAGMA quick_check").fetchall()[0][0]
            if check != "ok":
                raise StoreError("corrupt", f"outbox {path!r} is damaged: {check}")
            db.execute("PRAGMA journal_mode = WAL").fetchall()
            # A checkpoint fsyncs: tens of ms on an SD card, during which the owner thread
            # would take no SIP. The checkpointer thread does it on its own connection.
            db.execute("PRAGMA wal_autocheckpoint = 0").fetchall()
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}").fetchall()
            db.execute(
                f"PRAGMA journal_size_limit = {quota.wal_bytes // WAL_KEEP_SHARE}"
            ).fetchall()
            db.execute(
                f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}"
            ).fetchall()
            page = int(db.execute("PRAGMA page_size").fetchall()[0][0])
            db.execute(f"PRAGMA max_page_count = {max(16, quota.db_bytes // page)}").fetchall()
            db.executescript(_SCHEMA)
            try:
                for query in _SHAPE:
                    db.execute(query)
            except sqlite3.OperationalError as err:
                raise StoreError("corrupt", f"outbox {path!r} is not an outbox: {err}") from None
        except BaseException:
            db.close()
            raise
        return db

    def _one(self, query: str) -> int:
        return self._db.execute(query).fetchall()[0][0]

    def _error(self, what: str, err: BaseException) -> StoreError:
        if isinstance(err, StoreError):
            return err
        return StoreError(classify(err, self.path), f"{what} the outbox {self.path!r}: {err}")

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        db = self._db
        try:
            db.execute("BEGIN")
            yield db
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as err:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            raise self._error(what, err) from None
        self._committed()

    # -- writes -------------------------------------------------------------------------

    def insert(
        self,
        rows: Sequence[Row],
        keys: Iterable[tuple[bytes, float]] = (),
        delete: Sequence[int] = (),
    ) -> None:
        """Store rows (their ids given) and dedupe keys, dropping `delete`, in one transaction."""
        with self._transaction("cannot store into") as db:
            dropped = [self._size_of(db, i) for i in delete]
            db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in delete))
            db.executemany(
                "INSERT INTO outbox (id, topic, payload) VALUES (?, ?, ?)",
                ((r.id, r.topic, r.payload) for r in rows),
            )
            added = db.executemany(
                "INSERT OR IGNORE INTO seen (key, at) VALUES (?, ?)", keys
            ).rowcount
            excess = self.seen_count + max(added, 0) - self.quota.seen_max
            if excess > 0:
                # The oldest eighth at once: finding them scans the table (no index on
                # `at`, which would cost every insert a page), so not once per insert.
                excess += self.quota.seen_max // 8
                db.execute(
                    "DELETE FROM seen WHERE key IN (SELECT key FROM seen ORDER BY at LIMIT ?)",
                    (excess,),
                )
        self.seen_count += max(added, 0) - max(excess, 0)
        gone = [d for d in dropped if d is not None]
        self.pending += len(rows) - len(gone)
        self.pending_bytes += sum(r.size for r in rows) - sum(gone)
        self.max_id = max([self.max_id, *(r.id for r in rows)])

    def remove(self, row_ids: Iterable[int]) -> None:
        """Forget rows (delivered, or dropped to make room), all in one transaction."""
        ids = list(row_ids)
        if not ids:
            return
        with self._transaction("cannot update") as db:
            sizes = [self._size_of(db, i) for i in ids]
            db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in ids))
        gone = [s for s in sizes if s is not None]
        self.pending -= len(gone)
        self.pending_bytes -= sum(gone)

    @staticmethod
    def _size_of(db: sqlite3.Connection, row_id: int) -> int | None:
        found = db.execute(f"SELECT {_SIZE} FROM outbox WHERE id = ?", (row_id,)).fetchall()
        return int(found[0][0]) if found else None

    def sizes(self, row_ids: Iterable[int]) -> dict[int, int]:
        """The size of each row that exists (0 when the file cannot be read)."""
        ids = list(row_ids)
        try:
            found = {i: self._size_of(self._db, i) for i in ids}
        except sqlite3.Error:
            return dict.fromkeys(ids, 0)
        return {i: s for i, s in found.items() if s is not None}

    def replace(self, row_id: int, payload: bytes) -> None:
        """Rewrite a stored row's payload (a command's outcome, once known)."""
        with self._transaction("cannot update") as db:
            before = self._size_of(db, row_id)
            db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (payload, row_id))
            after = self._size_of(db, row_id)
        if before is not None and after is not None:
            self.pending_bytes += after - before

    def forget_seen(self, older_than_s: float) -> None:
        """Drop dedupe keys older than any retransmission could be (SIP gives up after 32 s)."""
        with self._transaction("cannot update") as db:
            cur = db.execute("DELETE FROM seen WHERE at < ?", (time.time() - older_than_s,))
        self.seen_count -= max(cur.rowcount, 0)

    def save_counters(self, counters: dict[str, int]) -> None:
        with self._transaction("cannot update") as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                counters.items(),
            )

    def set_announced(self, topics: Iterable[str]) -> None:
        with self._transaction("cannot update") as db:
            db.execute("DELETE FROM announced")
            db.executemany("INSERT INTO announced (topic) VALUES (?)", ((t,) for t in topics))

    # -- reads --------------------------------------------------------------------------

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to `limit` rows with an id above `row_id`, oldest first."""
        try:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (row_id, limit),
            ).fetchall()
        except sqlite3.Error as err:
            raise self._error("cannot read", err) from None
        return [Row(i, t, bytes(p)) for i, t, p in rows]

    def oldest(self, row_id: int, limit: int) -> list[tuple[int, int]]:
        """(id, size) of up to `limit` rows after `row_id`, oldest first: candidates to drop."""
        try:
            rows = self._db.execute(
                f"SELECT id, {_SIZE} FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (row_id, limit),
            ).fetchall()
        except sqlite3.Error as err:
            raise self._error("cannot read", err) from None
        return [(int(i), int(size)) for i, size in rows]

    def candidates(self, skip: Container[int]) -> Iterator[tuple[int, int]]:
        """(id, size) of every row but those in `skip`, oldest first, read 64 at a time.

        It ends early, quietly, if the file cannot be read: there is nothing to drop then.
        """
        cursor = 0
        while True:
            try:
                batch = self.oldest(cursor, 64)
            except StoreError:
                return
            if not batch:
                return
            yield from (row for row in batch if row[0] not in skip)
            cursor = batch[-1][0]

    def is_seen(self, key: bytes) -> bool:
        try:
            return self._db.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchall() != []
        except sqlite3.Error as err:
            raise self._error("cannot read", err) from None

    def announced(self) -> set[str]:
        try:
            return {t for (t,) in self._db.execute("SELECT topic FROM announced")}
        except sqlite3.Error as err:
            raise self._error("cannot read", err) from None

    # -- the WAL ------------------------------------------------------------------------

    def _committed(self) -> None:
        self._wal.committed(self._db)

    def disk_bytes(self) -> int:
        """The database file and its WAL, as they are on disk now."""
        total = 0
        for name in (self.path, self.path + "-wal"):
            with contextlib.suppress(OSError):
                total += os.stat(name).st_size
        return total

    def close(self) -> None:
        self._wal.close()
        try:
            # Fold the WAL back into the database: a clean stop leaves one file behind.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as err:
            log.warning("outbox %s: final checkpoint failed: %s", self.path, err)
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


def open_db(path: str, quota: Quota, synchronous: str = "normal") -> OutboxDb:
    """Open the outbox; a damaged or foreign file is set aside (kept, renamed) for a new one."""
    try:
        return OutboxDb(path, quota, synchronous)
    except StoreError as err:
        if err.kind != "corrupt":
            raise
        aside = set_aside(path, str(err))
    log.error("outbox %s set aside as %s; starting a new, empty one", path, aside)
    return OutboxDb(path, quota, synchronous)


def set_aside(path: str, why: str) -> str:
    """Rename a damaged database (and its WAL and shared memory) out of the way."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = f"{path}.corrupt-{stamp}"
    try:
        for suffix in ("-wal", "-shm", ""):
            if os.path.lexists(path + suffix):
                os.rename(path + suffix, aside + suffix)
    except OSError as err:
        raise StoreError("unusable", f"{why}; and it cannot be set aside: {err}") from None
    log.error("%s", why)
    return aside
