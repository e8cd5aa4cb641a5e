"""Delivery from the outbox (agent.core.relay) on a clock the test holds: status pace, health,
dedupe, a failed delete, and nothing published without a connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.adapters.outbox.disk import RETRY_S, SEEN_KEEP_S
from agent.adapters.outbox.model import StoreError
from agent.adapters.outbox.store import Outbox
from agent.core.health import OutboxHealth
from agent.core.relay import Delivery
from lab.fakes import Clock


class RecordingLink:
    """Publishes whatever it is asked to (as paho's link does for session=None)."""

    session = 1

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | str, int | None]] = []

    def publish_event(
        self, topic: str, payload: bytes | str, *, retain: bool = False, session: int | None = None
    ) -> int | None:
        self.calls.append((topic, payload, session))
        return len(self.calls)


@pytest.fixture
def rig(tmp_path: Path) -> tuple[Delivery, RecordingLink, list[dict[str, object]], Clock]:
    clock, link, statuses = Clock(100.0), RecordingLink(), []
    box = Outbox(str(tmp_path / "outbox.db"), capacity=3, when_full="refuse", clock=clock)
    return Delivery(box, link, statuses.append, clock=clock), link, statuses, clock


def test_nothing_is_asked_of_the_link_before_a_connection(rig) -> None:  # type: ignore[no-untyped-def]
    delivery, link, _, _ = rig
    delivery.add("t", b"a")
    delivery.pump()
    assert link.calls == []
    delivery.restart(1)
    delivery.pump()
    assert link.calls == [("t", b"a", 1)]


def test_the_status_goes_out_at_most_once_a_second_and_only_after_a_change(rig) -> None:  # type: ignore[no-untyped-def]
    delivery, _, statuses, clock = rig
    delivery.flush()
    assert [s["pending"] for s in statuses] == [0]  # the first turn says where it stands
    delivery.add("t", b"a")
    delivery.flush()
    assert len(statuses) == 1  # changed, but within the second
    clock.now += 0.999
    delivery.flush()
    assert len(statuses) == 1
    clock.now += 0.001
    delivery.flush()
    assert [s["pending"] for s in statuses] == [0, 1]
    clock.now += 5
    delivery.flush()
    assert len(statuses) == 2  # nothing changed
    delivery.restart(1)  # a new connection: said again
    delivery.flush()
    assert len(statuses) == 3


def test_a_full_outbox_that_refuses_says_so(rig) -> None:  # type: ignore[no-untyped-def]
    delivery, _, statuses, clock = rig
    for body in (b"a", b"b", b"c", b"d"):
        delivery.add("t", body)
    assert delivery.summary() == "outbox 3/3 pending, 1 refused"
    clock.now += 1
    delivery.flush()
    said = {k: statuses[-1][k] for k in ("pending", "capacity", "when_full", "dropped", "refused")}
    assert said == {"pending": 3, "capacity": 3, "when_full": "refuse", "dropped": 0, "refused": 1}


def test_a_repeated_dedupe_key_is_stored_once(rig) -> None:  # type: ignore[no-untyped-def]
    delivery, _, _, _ = rig
    assert delivery.add("t", b"a", "call-id/1/tag").duplicate is False
    assert delivery.add("t", b"a", "call-id/1/tag").duplicate is True
    assert delivery.add("t", b"a", "call-id/2/tag").duplicate is False
    assert delivery.outbox.pending == 2


def test_seen_keys_are_pruned_once_they_are_old_enough(
    rig, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    delivery, _, _, clock = rig
    pruned: list[float] = []
    # The database forgets old keys while the outbox is healthy (agent.adapters.outbox.disk).
    db = delivery.outbox._disk.db
    monkeypatch.setattr(db, "forget_seen", pruned.append)
    clock.now += SEEN_KEEP_S - 0.5
    delivery.flush()
    assert pruned == []
    clock.now += 0.5
    delivery.flush()
    delivery.flush()
    assert pruned == [SEEN_KEEP_S]
    clock.now += SEEN_KEEP_S
    delivery.flush()
    assert pruned == [SEEN_KEEP_S, SEEN_KEEP_S]


def test_progress_is_a_first_row_an_acknowledgement_or_a_connection(rig) -> None:  # type: ignore[no-untyped-def]
    delivery, _, _, clock = rig
    delivery.restart(1)
    clock.now = 200.0
    delivery.add("t", b"a")  # the first row: the clock of being stuck starts now
    clock.now = 300.0
    delivery.add("t", b"b")  # more rows are no progress
    assert delivery.health() == OutboxHealth(2, 200.0)
    delivery.pump()
    clock.now = 400.0
    delivery.on_published(999)  # not ours: no progress
    assert delivery.health() == OutboxHealth(2, 200.0)
    delivery.on_published(1)
    delivery.flush()
    assert delivery.health() == OutboxHealth(1, 400.0)
    clock.now = 500.0
    delivery.restart(1)
    assert delivery.health() == OutboxHealth(1, 500.0)


def test_acknowledged_rows_that_cannot_be_deleted_are_deleted_later(
    rig, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    delivery, link, _, clock = rig
    delivery.restart(1)
    delivery.add("t", b"a")
    delivery.pump()
    delivery.on_published(1)
    db = delivery.outbox._disk.db
    real_remove, failures = db.remove, [1]

    def remove(ids: list[int]) -> None:
        if failures:
            failures.pop()
            raise StoreError("unusable", "database is locked")
        real_remove(ids)

    monkeypatch.setattr(db, "remove", remove)
    delivery.flush()
    assert delivery.outbox.pending == 0  # acknowledged: it never goes out again ...
    assert db.pending == 1  # ... though the disk still holds it
    clock.now += RETRY_S
    delivery.flush()  # the disk is tried again, and takes the delete
    assert db.pending == 0
    delivery.restart(1)
    delivery.pump()
    assert [c[1] for c in link.calls] == [b"a"]


def test_delivery_goes_on_after_acknowledged_rows_were_deleted(rig) -> None:  # type: ignore[no-untyped-def]
    delivery, link, _, _ = rig
    delivery.restart(1)
    for body in (b"a", b"b"):
        delivery.add("t", body)
        delivery.pump()
        delivery.on_published(len(link.calls))
        delivery.flush()
    assert delivery.outbox.pending == 0 and [c[1] for c in link.calls] == [b"a", b"b"]
