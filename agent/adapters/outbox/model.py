"""What the outbox is made of, and how its storage fails: rows, the quota of bytes on disk,
and the kinds of trouble (full, unusable, corrupt) a sqlite or OS error is.

`outbox.max_disk` (default 16 MiB) is shared by `Quota`: the WAL gets a quarter (a
checkpoint truncates it when it grows past that; SQLite's journal_size_limit trims it
after each reset), the database the rest (`max_page_count`: SQLite refuses to grow the
file beyond it). Events may use half of the database; the rest is SQLite's pages and the
dedupe keys, at most `Quota.seen_max` of them.
"""

from __future__ import annotations

import errno
import os
from typing import Literal

from agent.core.record import record

Kind = Literal["full", "unusable", "corrupt"]
# What a dedupe key costs on disk (a 16-byte hash and a time, with the b-tree around it).
SEEN_ROW_BYTES = 100


class OutboxError(Exception):
    """The outbox cannot store or read; the message says which file and why."""


class StoreError(OutboxError):
    """A failed sqlite call; `kind` says whether space, access or the file itself is the trouble."""

    def __init__(self, kind: Kind, text: str) -> None:
        super().__init__(text)
        self.kind = kind


@record
class Quota:
    """How `outbox.max_disk` is shared between the WAL, the database, events and keys."""

    max_disk: int

    @property
    def wal_bytes(self) -> int:
        return self.max_disk // 4

    @property
    def db_bytes(self) -> int:
        return self.max_disk - self.wal_bytes

    @property
    def event_bytes(self) -> int:
        """Topic and payload bytes of all stored events together."""
        return self.db_bytes // 2

    @property
    def seen_max(self) -> int:
        """Dedupe keys kept at most (the oldest go first)."""
        return max(1000, self.db_bytes // 4 // SEEN_ROW_BYTES)


def classify(err: BaseException, path: str = "") -> Kind:
    """What kind of trouble a sqlite or OS error is (`path`: the file it was about)."""
    name = getattr(err, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return "corrupt"
    if name.startswith("SQLITE_FULL"):
        return "full"
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "full"
    if name.startswith("SQLITE_IOERR") and path and _no_space(path):
        return "full"  # e.g. the WAL index (-shm) could not be created on a full disk
    return "unusable"


def _no_space(path: str) -> bool:
    try:
        fs = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < 64 * 1024
