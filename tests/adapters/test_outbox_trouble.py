"""The outbox on hostile disks (issue 13, items 4, 5 and 12): full, read-only, damaged, flooded.

Real SQLite on a real tmpfs (root: lab.disk mounts it). Nothing here may raise: every call an
owner loop makes is tried while the disk is in trouble, and what was kept comes out, in
order, once the disk is back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.adapters.outbox.disk import RETRY_S
from agent.adapters.outbox.memory import MEMORY_ROW_BYTES
from agent.adapters.outbox.model import Quota
from agent.adapters.outbox.store import Outbox
from lab.disk import fill, read_only, tmpfs
from lab.fakes import Clock


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def _box(directory: Path, clock: Clock, **kwargs: object) -> Outbox:
    return Outbox(str(directory / "state" / "outbox.db"), clock=clock, **kwargs)  # type: ignore[arg-type]


def _payloads(box: Outbox) -> list[bytes]:
    return [r.payload for r in box.after(0, 100000)]


def _stored(directory: Path) -> list[bytes]:
    """What a fresh reader finds on disk (the agent's WAL included)."""
    db = directory / "state" / "outbox.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [bytes(p) for (p,) in conn.execute("SELECT payload FROM outbox ORDER BY id")]


# Every call the owner thread makes on an outbox, as the bridge and the relay make them.
CALLS: list[tuple[str, Callable[[Outbox], object]]] = [
    ("add", lambda b: b.add("sipagent/x/message/in", b"x" * 300)),
    ("add with a key", lambda b: b.add("t", b"y", dedupe_key="call-id|1 MESSAGE|tag")),
    ("replace", lambda b: [b.replace(r.id, b"z") for r in b.after(0, 3)]),
    ("after", lambda b: b.after(0, 128)),
    ("remove", lambda b: b.remove([r.id for r in b.after(0, 2)])),
    ("announced", lambda b: b.announced()),
    ("set_announced", lambda b: b.set_announced({"homeassistant/switch/a/config"})),
    ("maintain", lambda b: b.maintain()),
    ("pending", lambda b: (b.pending, b.pending_bytes, b.disk_bytes())),
]


def _every_call(box: Outbox, clock: Clock) -> None:
    for _name, call in CALLS:
        call(box)
        clock.now += 200  # past the retry interval, the counter interval and the key age
        box.maintain()


def test_a_full_disk_keeps_what_was_accepted_and_writes_it_when_space_returns(
    small_disk: Path,
) -> None:
    clock = Clock(1000.0)
    box = _box(small_disk, clock)
    box.add("t", b"before")
    filler = fill(small_disk)
    accepted = [box.add("t", f"during {i}".encode() + b"." * 500) for i in range(50)]
    assert all(a.id is not None for a in accepted)
    assert box.trouble == "disk full" and not box.durable
    assert any(not a.durable for a in accepted)
    in_order = _payloads(box)
    assert in_order == [b"before"] + [f"during {i}".encode() + b"." * 500 for i in range(50)]
    box.maintain()
    assert box.trouble == "disk full"

    filler.unlink()
    clock.now += RETRY_S
    box.maintain()
    assert box.durable and box.trouble is None and box.in_memory == 0
    assert _stored(small_disk) == _payloads(box) == in_order
    box.close()


def test_nothing_raises_on_a_full_disk_and_it_recovers_after(small_disk: Path) -> None:
    clock = Clock(1000.0)
    box = _box(small_disk, clock)
    for i in range(5):
        box.add("t", f"{i}".encode())
    filler = fill(small_disk)
    _every_call(box, clock)
    assert box.trouble == "disk full"
    filler.unlink()
    clock.now += RETRY_S
    box.maintain()
    assert box.durable and _stored(small_disk) == _payloads(box)
    box.close()


def test_a_read_only_state_directory_degrades_and_recovers(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    state = tmp_path / "state"
    with read_only(state):
        box = _box(tmp_path, clock)
        assert box.trouble == "not writable"
        assert box.add("t", b"1").durable is False
        _every_call(box, clock)
        box.add("t", b"2")
        clock.now += RETRY_S
        box.maintain()
        assert box.trouble == "not writable"
    clock.now += RETRY_S
    box.maintain()
    assert box.durable
    assert _stored(tmp_path) == _payloads(box)
    assert _payloads(box)[-1] == b"2"
    box.close()


def test_a_database_in_a_read_only_directory_is_delivered_after_it_is_writable(
    tmp_path: Path,
) -> None:
    clock = Clock(1000.0)
    box = _box(tmp_path, clock)
    for i in range(3):
        box.add("t", f"old {i}".encode())
    box.close()
    with read_only(tmp_path / "state"):
        box = _box(tmp_path, clock)
        assert box.trouble == "not writable"
        new = box.add("t", b"new")
        assert new.id is not None and not new.durable
        assert _payloads(box) == [b"new"]
    clock.now += RETRY_S
    assert box.maintain() is True  # the rows in memory got ids after those on disk
    assert box.durable
    assert _payloads(box) == [b"old 0", b"old 1", b"old 2", b"new"]
    box.close()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage": lambda db: db.write_bytes(b"this is not a database\n" * 100),
    "sqlite header, garbage after": lambda db: db.write_bytes(
        b"SQLite format 3\0" + b"\xff" * 8000
    ),
    "truncated": lambda db: db.write_bytes(db.read_bytes()[:5000]),
    "pages overwritten": lambda db: db.write_bytes(
        db.read_bytes()[:4096] + b"\xa5" * 4096 + db.read_bytes()[8192:]
    ),
    "another program's table": lambda db: (
        db.unlink(),
        sqlite3.connect(db).executescript(
            "CREATE TABLE outbox (name TEXT); INSERT INTO outbox VALUES ('x');"
        ),
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_database_is_set_aside_and_a_new_one_started(tmp_path: Path, damage: str) -> None:
    clock = Clock(1000.0)
    box = _box(tmp_path, clock)
    for i in range(50):
        box.add("t", f"old {i}".encode() * 20)
    box.close()
    db = tmp_path / "state" / "outbox.db"
    DAMAGE[damage](db)
    box = _box(tmp_path, clock)
    assert box.durable, box.trouble
    assert box.add("t", b"new").durable
    aside = [p.name for p in db.parent.iterdir() if ".corrupt-" in p.name]
    assert aside and all(name.startswith("outbox.db.corrupt-") for name in aside)
    _every_call(box, clock)
    box.close()


def test_a_directory_where_the_database_should_be_degrades_until_it_is_gone(
    tmp_path: Path,
) -> None:
    clock = Clock(1000.0)
    db = tmp_path / "state" / "outbox.db"
    db.mkdir(parents=True)
    box = _box(tmp_path, clock)
    assert box.trouble == "not writable"
    _every_call(box, clock)
    box.add("t", b"kept")
    db.rmdir()
    clock.now += RETRY_S
    box.maintain()
    assert box.durable and _stored(tmp_path)[-1] == b"kept"
    box.close()


def test_memory_is_bounded_and_past_it_the_oldest_are_dropped_and_counted(
    tmp_path: Path,
) -> None:
    clock = Clock(1000.0)
    (tmp_path / "file").write_text("")
    box = Outbox(str(tmp_path / "file" / "outbox.db"), clock=clock, max_memory=64 * 1024)
    for i in range(1000):
        box.add("t", f"{i:04d}".encode() + b"." * 300)
        assert box.memory_bytes <= 64 * 1024
    kept = _payloads(box)
    per_event = 1 + 304 + MEMORY_ROW_BYTES
    assert len(kept) == 64 * 1024 // per_event
    assert kept[-1].startswith(b"0999") and box.dropped == 1000 - len(kept)
    refusing = Outbox(
        str(tmp_path / "file" / "o2.db"), clock=clock, max_memory=64 * 1024, when_full="refuse"
    )
    for i in range(1000):
        refusing.add("t", f"{i:04d}".encode() + b"." * 300)
    assert _payloads(refusing)[0].startswith(b"0000") and refusing.refused == 1000 - len(kept)


@pytest.mark.parametrize("when_full", ["drop_oldest", "refuse"])
def test_bytes_on_disk_stay_within_max_disk_under_a_flood(tmp_path: Path, when_full: str) -> None:
    clock = Clock(1000.0)
    max_disk = 1024**2
    box = _box(tmp_path, clock, max_disk=max_disk, when_full=when_full, capacity=100000)
    highest = 0
    for i in range(6000):
        box.add("sipagent/x/message/in", f"{i:05d}".encode() + b"r" * 1000, f"cid-{i}|1|t")
        if i % 10 == 0:
            clock.now += 0.5
            box.maintain()
        highest = max(highest, box.disk_bytes())
    assert highest <= max_disk
    assert box.pending_bytes <= Quota(max_disk).event_bytes
    db = box._disk.db
    assert db is not None and db.seen_count <= Quota(max_disk).seen_max
    lost = box.dropped if when_full == "drop_oldest" else box.refused
    assert lost > 0 and box.pending + lost == 6000
    box.close()


def test_refusals_and_retransmission_keys_do_not_grow_the_wal(tmp_path: Path) -> None:
    """The 420 MB WAL: 20 000 refused B/command results; and a flood of distinct keys."""
    clock = Clock(1000.0)
    box = _box(tmp_path, clock, capacity=10, when_full="refuse", max_disk=1024**2)
    for i in range(20000):
        box.add("sipagent/x/command/result", b"{}", dedupe_key=f"flood-{i}|1 MESSAGE|t")
        if i % 100 == 0:
            clock.now += 1
            box.maintain()
        assert box.disk_bytes() <= 1024**2
    assert box.refused == 20000 - 10
    box.close()
