"""The owner loop's timers, on a fake clock."""

from __future__ import annotations

from agent.core.timers import Timers
from lab.fakes import Clock


def test_timers_run_in_order_when_due() -> None:
    clock = Clock()
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_later(2, "a", lambda: ran.append("a2"))
    timers.call_later(1, "b", lambda: ran.append("b1"))
    assert timers.seconds_to_next() == 1
    assert timers.run_due() == 0
    clock.now = 2.5
    assert timers.run_due() == 2
    assert ran == ["b1", "a2"]
    assert timers.seconds_to_next() is None


def test_cancel_drops_every_timer_of_a_key() -> None:
    clock = Clock()
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_later(1, "a", lambda: ran.append("a"))
    timers.call_later(2, "a", lambda: ran.append("a"))
    timers.call_later(3, "b", lambda: ran.append("b"))
    assert timers.cancel("a") is True
    assert timers.cancel("a") is False
    assert timers.pending("a") is False and timers.pending("b") is True
    assert timers.seconds_to_next() == 3
    clock.now = 5
    timers.run_due()
    assert ran == ["b"]


def test_a_timer_may_schedule_the_next_one_and_a_failing_one_stops_nothing() -> None:
    clock = Clock()
    timers = Timers(clock)
    ran: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    timers.call_later(0, "x", broken)
    timers.call_later(0, "y", lambda: timers.call_later(1, "y", lambda: ran.append(2)))
    assert timers.run_due() == 2
    clock.now = 1
    timers.run_due()
    assert ran == [2]
