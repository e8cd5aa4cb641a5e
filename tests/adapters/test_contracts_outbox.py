"""The Outbox port's contract, held by FakeOutbox and the SQLite outbox alike (as
test_contracts.py says): ids, order, dedupe keys, bounds and what they drop or refuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.adapters.outbox.store import Outbox
from agent.core import ports
from lab.fakes import FakeOutbox

MakeOutbox = Callable[..., ports.Outbox]


@pytest.fixture(params=["fake", "real"])
def make_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeOutbox]:
    """Outboxes with the given bounds (capacity, when_full, max_disk)."""
    made: list[Outbox] = []

    def make(**bounds: Any) -> ports.Outbox:
        if request.param == "fake":
            return FakeOutbox(**bounds)
        made.append(Outbox(str(tmp_path / f"outbox{len(made)}.db"), **bounds))
        return made[-1]

    yield make
    for box in made:
        box.close()


def kept(added: ports.Added) -> int:
    """The id of an event the outbox took."""
    assert added.id is not None, added
    return added.id


def test_ids_increase_in_the_order_events_were_added(make_outbox: MakeOutbox) -> None:
    box = make_outbox()
    added = [box.add(f"t/{n}", b"%d" % n) for n in range(5)]
    ids = [kept(a) for a in added]
    assert ids == sorted(set(ids))
    assert all(a.durable and not (a.duplicate or a.refused or a.dropped) for a in added)
    rows = box.after(0, 10)
    assert [(r.id, r.topic, r.payload) for r in rows] == [
        (i, f"t/{n}", b"%d" % n) for n, i in enumerate(ids)
    ]
    assert box.after(ids[1], 2) == rows[2:4]  # oldest first, at most `limit`
    assert box.after(ids[-1], 10) == []
    assert (box.pending, box.dropped, box.refused) == (5, 0, 0)
    assert box.trouble is None and box.durable
    assert box.maintain() is False  # nothing renumbered


def test_removed_rows_are_gone_and_later_ids_still_increase(make_outbox: MakeOutbox) -> None:
    box = make_outbox()
    ids = [kept(box.add("t", b"x")) for _ in range(4)]
    box.remove([ids[0], ids[2], 999])  # an unknown id is no error
    assert [r.id for r in box.after(0, 10)] == [ids[1], ids[3]] and box.pending == 2
    box.remove([ids[1], ids[3]])
    assert kept(box.add("t", b"y")) > max(ids) and box.pending == 1


def test_a_dedupe_key_seen_before_makes_a_duplicate(make_outbox: MakeOutbox) -> None:
    box = make_outbox()
    first = kept(box.add("t", b"on gate", "call-1@pbx"))
    again = box.add("t", b"on gate (retransmitted)", "call-1@pbx")
    kept(box.add("t", b"off gate", "call-2@pbx"))
    assert again == ports.Added(None, duplicate=True)
    assert [r.payload for r in box.after(0, 10)] == [b"on gate", b"off gate"]
    box.remove([first])
    assert box.add("t", b"x", "call-1@pbx").duplicate  # delivered still counts as seen


def test_a_full_outbox_drops_the_oldest_and_counts_them(make_outbox: MakeOutbox) -> None:
    box = make_outbox(capacity=3)
    added = [box.add("t", b"%d" % n) for n in range(5)]
    assert [a.dropped for a in added] == [0, 0, 0, 1, 1]
    assert [r.payload for r in box.after(0, 10)] == [b"2", b"3", b"4"]
    assert (box.pending, box.dropped, box.refused) == (3, 2, 0)


def test_a_full_outbox_that_refuses_keeps_what_it_has(make_outbox: MakeOutbox) -> None:
    box = make_outbox(capacity=2, when_full="refuse")
    assert box.when_full == "refuse" and box.capacity == 2
    for n in range(2):
        kept(box.add("t", b"%d" % n))
    assert box.add("t", b"2", "call-3") == ports.Added(None, refused=True)
    assert box.add("t", b"2", "call-3").duplicate  # its retransmission is refused too
    assert [r.payload for r in box.after(0, 10)] == [b"0", b"1"]
    assert (box.pending, box.dropped, box.refused) == (2, 0, 1)


def test_refused_without_memory_a_retransmission_is_weighed_again(make_outbox: MakeOutbox) -> None:
    # pjproject 2.16+: the sender was answered "not kept" (500), so its retry must not be
    # taken for one that was kept (a 200 for an event that is nowhere).
    box = make_outbox(capacity=1, when_full="refuse")
    first = kept(box.add("t", b"0"))
    assert box.add("t", b"1", "call-4", memory_ok=False).refused
    assert box.add("t", b"1", "call-4", memory_ok=False).refused  # not a duplicate
    assert box.refused == 2
    box.remove([first])
    kept(box.add("t", b"1", "call-4", memory_ok=False))
    assert box.add("t", b"1", "call-4", memory_ok=False).duplicate


def test_bytes_are_bounded_by_max_disk_too(make_outbox: MakeOutbox) -> None:
    box = make_outbox(max_disk=64 * 1024)  # events may use 24 KiB of it (Quota.event_bytes)
    assert box.max_disk == 64 * 1024
    first, second = box.add("t", b"a" * 10_000), box.add("t", b"b" * 10_000)
    third = box.add("t", b"c" * 10_000)
    assert (first.dropped, second.dropped, third.dropped) == (0, 0, 1)
    assert [r.payload[:1] for r in box.after(0, 10)] == [b"b", b"c"]
    huge = box.add("t", b"d" * 30_000, "call-5")  # more than the outbox can ever hold
    assert huge == ports.Added(None, refused=True) and box.add("t", b"", "call-5").duplicate
    assert (box.pending, box.dropped, box.refused) == (2, 1, 1)


def test_replace_rewrites_a_kept_payload(make_outbox: MakeOutbox) -> None:
    box = make_outbox()
    ids = [kept(box.add("t", b"pending")) for _ in range(2)]
    box.replace(ids[1], b"done")
    box.replace(999, b"nowhere")  # a row delivered meanwhile: nothing to do
    assert [(r.id, r.payload) for r in box.after(0, 10)] == [
        (ids[0], b"pending"),
        (ids[1], b"done"),
    ]


def test_announced_topics_round_trip(make_outbox: MakeOutbox) -> None:
    box = make_outbox()
    assert box.announced() == set()
    box.set_announced(iter(["ha/switch/a/config", "ha/sensor/b/config"]))
    got = box.announced()
    got.add("mine")  # a copy: the caller's changes stay the caller's
    assert box.announced() == {"ha/switch/a/config", "ha/sensor/b/config"}
    box.set_announced([])
    assert box.announced() == set()
