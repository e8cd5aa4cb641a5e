"""The broker choice: round-robin on failure, failing back on a clock (pure logic)."""

from __future__ import annotations

import pytest

from agent.config.model import Broker
from agent.core.brokers import BrokerChoice
from lab.fakes import Clock

A, B, C = Broker("a", 1883), Broker("b", 1883), Broker("c", 1884)


def test_failures_move_round_robin_starting_at_the_preferred() -> None:
    choice = BrokerChoice((A, B, C), 300, Clock(1000.0))
    assert (choice.current, choice.preferred) == (A, A)
    assert [choice.failed() for _ in range(4)] == [B, C, A, B]


def test_one_broker_stays_itself_and_never_fails_back() -> None:
    choice = BrokerChoice((A,), 300, Clock(1000.0))
    assert choice.failed() == A
    choice.connected()
    assert choice.failback_in() is None


def test_on_the_preferred_broker_there_is_nothing_to_fail_back_to() -> None:
    choice = BrokerChoice((A, B), 300, Clock(1000.0))
    choice.connected()
    assert choice.failback_in() is None


def test_failback_is_due_failback_s_after_connecting_elsewhere() -> None:
    clock = Clock(1000.0)
    choice = BrokerChoice((A, B), 300, clock)
    choice.failed()
    assert choice.failback_in() is None  # not connected yet: nothing to compare with
    choice.connected()
    assert choice.failback_in() == 300
    clock.now += 299.5
    assert choice.failback_in() == pytest.approx(0.5)
    clock.now += 10
    assert choice.failback_in() == 0
    assert choice.fail_back() == A
    assert choice.failback_in() is None


def test_a_refused_failback_waits_another_period_and_stays() -> None:
    clock = Clock(1000.0)
    choice = BrokerChoice((A, B), 60, clock)
    choice.failed()
    choice.connected()
    clock.now += 60
    choice.failback_refused()
    assert (choice.current, choice.failback_in()) == (B, 60)


def test_failing_elsewhere_cancels_the_failback_until_the_next_connect() -> None:
    clock = Clock(1000.0)
    choice = BrokerChoice((A, B, C), 60, clock)
    choice.failed()
    choice.connected()
    assert choice.failed() == C
    assert choice.failback_in() is None
    choice.failback_refused()  # a stale answer from a check started before the failure
    assert choice.failback_in() is None
    choice.connected()
    assert choice.failback_in() == 60


def test_failback_zero_means_never() -> None:
    choice = BrokerChoice((A, B), 0, Clock(1000.0))
    choice.failed()
    choice.connected()
    assert choice.failback_in() is None


def test_no_brokers_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one broker"):
        BrokerChoice((), 300, Clock(1000.0))


def test_brokers_print_as_host_port_with_brackets_for_ipv6() -> None:
    assert [str(A), str(Broker("::1", 1883))] == ["a:1883", "[::1]:1883"]
