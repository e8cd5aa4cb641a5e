"""The relay's reports (agent.core.relay.Delivery) with the outbox's fake and a fake clock:
`B/outbox` at once when the disk's trouble changes (else at most once a second), the
summary when events are not durable, what the watchdog is told, a default add that may
be held in memory, and rows renumbered by the outbox sent again on the same connection.

Oracles: the README's `B/outbox` row (at most once a second while it changes, at once when
`durable` does) and the status line's words.
"""

from __future__ import annotations

from agent.core.relay import Delivery
from lab.fakes import Clock, FakeLink, FakeOutbox


class Rig:
    def __init__(self) -> None:
        self.clock = Clock(100.0)
        self.outbox = FakeOutbox()
        self.link = FakeLink()
        self.statuses: list[dict[str, object]] = []
        self.delivery = Delivery(self.outbox, self.link, self.statuses.append, self.clock)


def test_trouble_is_reported_at_once_and_other_changes_once_a_second() -> None:
    rig = Rig()
    rig.delivery.flush()
    assert len(rig.statuses) == 1  # the first status, at once
    rig.delivery.add("t", b"x")
    rig.clock.now += 0.5
    rig.delivery.flush()
    assert len(rig.statuses) == 1  # a fill level: within the second, not yet
    rig.outbox.trouble, rig.outbox.durable, rig.outbox.in_memory = "disk full", False, 1
    rig.delivery.flush()
    assert len(rig.statuses) == 2  # trouble: at once
    assert (rig.statuses[-1]["trouble"], rig.statuses[-1]["durable"]) == ("disk full", False)
    rig.clock.now += 0.1
    rig.delivery.flush()
    assert len(rig.statuses) == 2  # the same trouble: nothing new
    rig.outbox.trouble, rig.outbox.durable = None, True
    rig.delivery.flush()
    assert rig.statuses[-1]["trouble"] is None and len(rig.statuses) == 3


def test_the_summary_says_when_events_are_not_on_disk() -> None:
    rig = Rig()
    assert rig.delivery.summary() == "outbox 0/10000 pending, 0 dropped"
    rig.outbox.durable, rig.outbox.in_memory = False, 3
    assert rig.delivery.summary() == (
        "outbox 0/10000 pending, 0 dropped, NOT DURABLE (catching up: 3 in memory)"
    )
    rig.outbox.trouble = "disk full"
    assert rig.delivery.summary().endswith(", NOT DURABLE (disk full: 3 in memory)")


def test_the_watchdog_hears_the_trouble_and_what_is_held_in_memory() -> None:
    rig = Rig()
    rig.outbox.trouble, rig.outbox.in_memory = "not writable", 4
    health = rig.delivery.health()
    assert (health.trouble, health.in_memory, health.stuck_since) == ("not writable", 4, None)


class RenumberingOutbox(FakeOutbox):
    """An outbox whose database opened late: the rows held in memory get new ids."""

    def __init__(self) -> None:
        super().__init__()
        self.renumber = False
        self.memory_ok: list[bool] = []

    def add(self, topic, payload, dedupe_key=None, *, memory_ok=True):  # type: ignore[no-untyped-def]
        self.memory_ok.append(memory_ok)
        return super().add(topic, payload, dedupe_key, memory_ok=memory_ok)

    def maintain(self) -> bool:
        if not self.renumber:
            return False
        self.renumber = False
        self.rows = {
            i + 100: r.__class__(i + 100, r.topic, r.payload) for i, r in self.rows.items()
        }
        return True


def test_rows_renumbered_by_the_outbox_go_again_on_the_same_connection() -> None:
    outbox, link, clock = RenumberingOutbox(), FakeLink(), Clock()
    delivery = Delivery(outbox, link, lambda status: None, clock)
    delivery.restart(link.session)
    delivery.add("t", b"one")
    assert outbox.memory_ok == [True]  # an event may be held in memory unless told otherwise
    delivery.pump()
    assert [p for _, p, _ in link.published] == ["one"]
    outbox.renumber = True
    delivery.flush()
    delivery.pump()
    assert [p for _, p, _ in link.published] == ["one", "one"]  # again, under its new id


def test_trouble_right_after_a_status_is_still_said_at_once() -> None:
    clock = Clock(0.0)
    outbox, statuses = FakeOutbox(), []
    delivery = Delivery(outbox, FakeLink(), statuses.append, clock)
    delivery.flush()
    clock.now = 0.2
    outbox.trouble = "disk full"
    delivery.flush()
    assert [s["trouble"] for s in statuses] == [None, "disk full"]
