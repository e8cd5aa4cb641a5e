"""Retransmissions recognised without an outbox (agent.core.dedupe): pure, with a fake clock."""

from __future__ import annotations

from agent.core.counters import Counters
from agent.core.dedupe import RecentRequests
from agent.core.intake import Intake
from lab.fakes import FakeSip, message


def test_a_key_repeats_within_the_window_and_not_after():
    recent = RecentRequests(keep_s=40)
    assert not recent.repeat("c1|1 MESSAGE|t1", now=0)
    assert recent.repeat("c1|1 MESSAGE|t1", now=39)
    assert not recent.repeat("c1|1 MESSAGE|t1", now=80)  # the window runs from the first


def test_requests_without_a_key_are_never_repeats():
    recent = RecentRequests()
    assert not recent.repeat(None, 0) and not recent.repeat(None, 0)
    assert len(recent) == 0


def test_past_capacity_the_oldest_is_forgotten_and_counted():
    forgotten = []
    recent = RecentRequests(keep_s=40, capacity=3, on_forget=lambda: forgotten.append(1))
    for i in range(5):
        assert not recent.repeat(f"k{i}", now=i)
    assert len(recent) == 3 and len(forgotten) == 2
    assert not recent.repeat("k0", now=5)  # forgotten early: a late retransmission gets through
    assert recent.repeat("k4", now=5)


def test_expired_keys_leave_memory():
    recent = RecentRequests(keep_s=10)
    for i in range(100):
        recent.repeat(f"k{i}", now=i * 0.1)
    recent.repeat("late", now=100)
    assert len(recent) == 1


def test_without_mqtt_the_intake_counts_what_it_forgets_and_answers_each_repeat() -> None:
    # agent.core.intake: without an outbox, retransmissions are recognised here.
    counters = Counters()
    sip = FakeSip()
    intake = Intake(sip, None, counters)
    assert intake.recent is not None
    intake.recent.capacity = 2
    first = message(request_key="c1|1 MESSAGE|t")
    assert intake.accept(first, True) is True
    assert intake.accept(first, True) is False  # a retransmission: answered, not acted on
    assert [code for _, code in sip.answers] == [200, 200]
    for key in ("c2|1 MESSAGE|t", "c3|1 MESSAGE|t"):
        intake.accept(message(request_key=key), True)
    assert counters.get("sip.dedupe.forgotten") == 1
    assert intake.accept(first, True) is True  # forgotten: taken as new
