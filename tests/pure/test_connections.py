"""The count of incoming TCP/TLS connections against pjsip's slots (agent.core.connections),
with a fake clock: at most `per_ip` from one stranger, idle ones found, a closed one holding
its slot for a second, and the breaker's hysteresis (trips at 40, lets in again under 30).

The oracle is the module's contract as its docstring states it, counted by hand here.
"""

from __future__ import annotations

from agent.core.connections import BREAKER_AT, BREAKER_OFF, SLOT_HELD_S, Connections
from lab.fakes import Clock


def test_the_documented_numbers() -> None:
    assert (SLOT_HELD_S, BREAKER_AT, BREAKER_OFF) == (1.0, 40, 30)


def test_at_most_per_ip_incoming_from_one_stranger() -> None:
    guard = Connections(per_ip=2, idle_s=10, clock=Clock())
    assert guard.opened(1, "203.0.113.9", incoming=True, trusted=False)
    assert guard.opened(2, "203.0.113.9", incoming=True, trusted=False)
    assert not guard.opened(3, "203.0.113.9", incoming=True, trusted=False)
    assert guard.opened(4, "203.0.113.10", incoming=True, trusted=False)  # another address
    guard.closed(2)
    assert guard.opened(5, "203.0.113.9", incoming=True, trusted=False) is False  # 3 still open
    guard.closed(3)
    assert guard.opened(6, "203.0.113.9", incoming=True, trusted=False) is False  # 1, 5, 6
    guard.closed(5)
    guard.closed(6)
    assert guard.opened(7, "203.0.113.9", incoming=True, trusted=False)


def test_the_proxy_and_our_own_connections_are_not_limited() -> None:
    guard = Connections(per_ip=1, idle_s=10, clock=Clock())
    assert all(guard.opened(h, "192.0.2.50", incoming=True, trusted=True) for h in range(5))
    assert all(guard.opened(h, "192.0.2.60", incoming=False, trusted=False) for h in range(5, 9))
    # Outgoing ones from the address do not count against a stranger there either.
    assert guard.opened(9, "192.0.2.60", incoming=True, trusted=False)


def test_idle_strangers_are_found_after_idle_s_and_a_request_keeps_one_alive() -> None:
    clock = Clock(100.0)
    guard = Connections(per_ip=5, idle_s=10, clock=clock)
    guard.opened(1, "203.0.113.9", incoming=True, trusted=False)
    guard.opened(2, "203.0.113.9", incoming=True, trusted=False)
    guard.opened(3, "192.0.2.50", incoming=True, trusted=True)
    guard.opened(4, "192.0.2.60", incoming=False, trusted=False)
    clock.now = 105.0
    guard.request(2)
    guard.request(99)  # unknown: nothing happens
    clock.now = 109.9
    assert guard.idle() == []
    clock.now = 110.0  # exactly idle_s after the first opened
    assert guard.idle() == [1]
    clock.now = 115.0
    assert guard.idle() == [1, 2]
    guard.closed(1)
    assert guard.idle() == [2]


def test_a_closed_connection_holds_its_slot_for_a_second() -> None:
    clock = Clock(0.0)
    guard = Connections(per_ip=5, idle_s=10, clock=clock)
    guard.opened(1, "203.0.113.9", incoming=True, trusted=False)
    guard.opened(2, "203.0.113.9", incoming=True, trusted=False)
    assert guard.slots() == 2
    clock.now = 0.5
    guard.closed(1)
    guard.closed(1)  # twice: counted once
    guard.closed(7)  # never opened: nothing
    assert guard.slots() == 2
    clock.now = 1.49
    assert guard.slots() == 2
    clock.now = 1.5
    assert guard.slots() == 1


def test_the_breaker_trips_at_40_and_lets_in_again_under_30() -> None:
    clock = Clock(0.0)
    guard = Connections(per_ip=100, idle_s=10, clock=clock)
    for handle in range(39):
        guard.opened(handle, "192.0.2.50", incoming=True, trusted=True)
    assert guard.breaker() is False
    guard.opened(39, "192.0.2.50", incoming=True, trusted=True)
    assert guard.breaker() is True  # 40
    for handle in range(10):
        guard.closed(handle)
    assert guard.breaker() is True  # 30 open, 10 still holding their slots
    clock.now = 1.0
    assert guard.breaker() is True  # 30: not under 30
    guard.closed(10)
    assert guard.breaker() is True  # 29 open and one just closed
    clock.now = 2.0
    assert guard.breaker() is False  # 29
    for handle in range(40, 50):
        guard.opened(handle, "192.0.2.50", incoming=True, trusted=True)
    assert guard.breaker() is False  # 39
    guard.opened(50, "192.0.2.50", incoming=True, trusted=True)
    assert guard.breaker() is True
