"""Retransmissions recognised without an outbox (agent.core.dedupe): pure, with a fake clock."""

from __future__ import annotations

from agent.core.dedupe import RecentRequests


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
