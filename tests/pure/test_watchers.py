"""The presence watchers the agent serves, counted (agent.core.watchers), with a fake clock:
the two bounds, a refresh that moves the expiry, Expires 0 that ends one, pjsip's longest
grant (600 s) when none or more is asked, and the count per sender.
"""

from __future__ import annotations

from agent.core.watchers import LONGEST_S, Watchers
from lab.fakes import Clock


def test_bounds_per_sender_and_in_total() -> None:
    watchers = Watchers(total=3, per_sender=2, clock=Clock())
    assert watchers.admit("c1", "alice", 60) is None
    assert watchers.admit("c1", "alice", 60) is None  # a retransmission: still one
    assert watchers.admit("c2", "alice", 60) is None
    assert watchers.admit("c3", "alice", 60) == (
        "too many subscriptions from alice (sip.limits.watchers_per_sender)"
    )
    assert watchers.admit("c4", "bob", 60) is None
    assert watchers.admit("c5", "carol", 60) == "too many watchers (sip.limits.watchers)"
    assert (watchers.count(), watchers.count("alice"), watchers.count("bob")) == (3, 2, 1)
    assert watchers.count("nobody") == 0


def test_a_watcher_lasts_what_was_granted_and_a_refresh_extends_it() -> None:
    clock = Clock(1000.0)
    watchers = Watchers(total=10, per_sender=10, clock=clock)
    watchers.admit("c1", "alice", 60)
    watchers.admit("c2", "alice", None)  # no Expires: pjsip grants its longest
    watchers.admit("c3", "alice", 3600)  # more than pjsip grants: its longest
    assert LONGEST_S == 600
    clock.now = 1059.0
    watchers.refreshed("c1", 120)
    watchers.refreshed("unknown", 120)  # not ours: nothing
    clock.now = 1178.9
    assert watchers.count() == 3
    clock.now = 1179.0  # 120 s after the refresh
    assert watchers.count() == 2
    clock.now = 1600.0
    assert watchers.count() == 0


def test_expires_0_ends_a_subscription_and_frees_its_slot() -> None:
    clock = Clock(0.0)
    watchers = Watchers(total=1, per_sender=1, clock=clock)
    watchers.admit("c1", "alice", 60)
    watchers.refreshed("c1", 1)  # one more second
    clock.now = 0.5
    assert watchers.count("alice") == 1
    watchers.refreshed("c1", 0)
    assert watchers.count() == 0
    assert watchers.admit("c2", "alice", 60) is None


def test_an_expired_watcher_frees_its_slot_for_a_new_one() -> None:
    clock = Clock(0.0)
    watchers = Watchers(total=1, per_sender=1, clock=clock)
    watchers.admit("c1", "alice", 10)
    clock.now = 10.0
    assert watchers.admit("c2", "bob", 10) is None
