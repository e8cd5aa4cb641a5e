"""Timer J and the refusal bound under load: the policy (pure) and its applier."""

from __future__ import annotations

import pytest

from agent.core.sipload import DEFAULT_POLICY as P
from agent.core.sipload import LoadState, SipLoad, next_state

NORMAL = LoadState(P.normal_j_ms, refusing=False)
FLOOD = LoadState(P.flood_j_ms, refusing=False)


@pytest.mark.parametrize(
    ("count", "state", "expected"),
    [
        (0, NORMAL, NORMAL),
        (P.high - 1, NORMAL, NORMAL),  # below high: keep 32 s
        (P.high, NORMAL, FLOOD),
        (P.low, FLOOD, FLOOD),  # between low and high: keep what is set (hysteresis)
        (P.low - 1, FLOOD, NORMAL),
        (P.refuse, FLOOD, LoadState(P.flood_j_ms, refusing=True)),
        (P.resume, LoadState(P.flood_j_ms, True), LoadState(P.flood_j_ms, True)),
        (P.resume - 1, LoadState(P.flood_j_ms, True), FLOOD),
    ],
)
def test_timer_j_and_refusal_follow_the_transactions_held(count, state, expected):
    assert next_state(count, state, P) == expected


def test_the_policy_keeps_its_thresholds_in_order():
    assert P.low < P.high < P.resume < P.refuse
    assert P.flood_j_ms < P.normal_j_ms


class FakeLayer:
    def __init__(self) -> None:
        self.count = 0
        self.timer_j: list[int] = []

    def transactions(self) -> int:
        return self.count

    def set_timer_j(self, ms: int) -> None:
        self.timer_j.append(ms)


def test_the_applier_sets_timer_j_only_on_a_change_and_remembers_the_peak():
    layer = FakeLayer()
    load = SipLoad(layer)
    for count in (10, 1500, 2000, 800, 150, 100):
        layer.count = count
        load.tick()
    assert layer.timer_j == [P.flood_j_ms, P.normal_j_ms]
    assert load.peak == 2000
    assert load.summary() == "SIP transactions 100 (peak 2000), Timer J 32 s"


def test_refusal_is_announced_in_the_summary():
    layer = FakeLayer()
    load = SipLoad(layer, can_refuse=True)
    layer.count = P.refuse
    assert load.tick().refusing
    assert load.summary().endswith("refusing MESSAGE (503)")


def test_without_deferred_answers_nothing_is_refused():
    layer = FakeLayer()
    load = SipLoad(layer)  # pjsua 2.15 answered 200 before the agent could refuse
    layer.count = P.refuse * 2
    assert not load.tick().refusing
    assert layer.timer_j == [P.flood_j_ms]


def test_without_the_c_api_nothing_changes():
    load = SipLoad(None)
    assert load.tick() == NORMAL
