"""The GPIO adapter on MockFactory pins, with pulse and blink on a fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agent.adapters.gpio import Outputs
from agent.config.load import parse_config
from agent.core.timers import Timers
from lab.fakes import Clock

CONFIG = """
[device]
id = "t"
[sip]
uri = "sip:t@127.0.0.1"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
max_pulse = "5s"
[gpio.outputs.relay]
pin = 27
active_high = false
[gpio.outputs.dimmer]
pin = 12
pwm = true
level_min = 10
"""


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.timers = Timers(self.clock)
        self.changes: list[tuple[str, bool]] = []
        config = parse_config(CONFIG)
        self.outputs = Outputs(
            config.gpio, lambda n, on: self.changes.append((n, on)), timers=self.timers
        )
        self.factory = self.outputs._factory
        assert self.factory is not None

    def pin(self, number: int) -> float:
        return float(self.factory.pin(number).state)  # type: ignore[union-attr]

    def advance(self, seconds: float) -> None:
        """Run the timers as the loop would, in small steps."""
        end = self.clock.now + seconds
        while True:
            due = self.timers.seconds_to_next()
            if due is None or self.clock.now + due > end:
                break
            self.clock.now += due
            self.timers.run_due()
        self.clock.now = end


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.outputs.close()


def test_active_low_output_drives_the_pin_low_when_on(rig: Rig) -> None:
    assert rig.pin(27) == 1.0  # off = high on an active-low relay board
    rig.outputs.set_output("relay", True)
    assert rig.pin(27) == 0.0
    assert rig.changes == [("relay", True)]


def test_pulse_switches_on_then_off_without_blocking(rig: Rig) -> None:
    rig.outputs.pulse("gate", 2.0)
    assert rig.pin(17) == 1.0
    assert rig.outputs.activity("gate") == "pulse 2s"
    rig.advance(1.9)
    assert rig.pin(17) == 1.0
    rig.advance(0.2)
    assert rig.pin(17) == 0.0
    assert rig.outputs.activity("gate") is None
    assert rig.changes == [("gate", True), ("gate", False)]


def test_a_new_command_cancels_a_running_pulse(rig: Rig) -> None:
    rig.outputs.pulse("gate", 2.0)
    rig.outputs.set_output("gate", True)  # e.g. `on gate` while the pulse runs
    rig.advance(5)
    assert rig.pin(17) == 1.0  # the pulse's end did not switch it off
    rig.outputs.pulse("gate", 1.0)
    rig.outputs.pulse("gate", 3.0)  # a new pulse restarts the time
    rig.advance(2)
    assert rig.pin(17) == 1.0
    rig.advance(1.5)
    assert rig.pin(17) == 0.0


def test_blink_counts_and_ends_off_and_announces_start_and_end(rig: Rig) -> None:
    seen: list[float] = []
    rig.outputs.blink("gate", 0.25, 0.5, 3)
    for _ in range(16):  # exact binary fractions: no rounding at the phase edges
        seen.append(rig.pin(17))
        rig.advance(0.125)
    assert seen == [1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0]
    rig.advance(5)
    assert rig.pin(17) == 0.0
    assert rig.timers.seconds_to_next() is None
    assert rig.changes == [("gate", True), ("gate", False)]


def test_endless_blink_stops_on_off(rig: Rig) -> None:
    rig.outputs.blink("gate", 0.1, 0.1, None)
    rig.advance(10.05)
    assert rig.outputs.activity("gate") == "blink"
    rig.outputs.set_output("gate", False)
    assert rig.timers.seconds_to_next() is None
    assert rig.pin(17) == 0.0


def test_pwm_levels_and_state_payload(rig: Rig) -> None:
    rig.outputs.set_level("dimmer", 0.4)
    assert rig.pin(12) == pytest.approx(0.4)
    assert json.loads(rig.outputs.state_payload("dimmer")) == {"state": "ON", "level": 40.0}
    assert rig.outputs.state_payload("gate") == "OFF"
    rig.outputs.pulse("dimmer", 1)
    assert rig.pin(12) == 1.0
    rig.advance(1)
    assert rig.pin(12) == 0.0


def test_safe_state_cancels_everything(rig: Rig) -> None:
    rig.outputs.blink("gate", 0.1, 0.1, None)
    rig.outputs.pulse("relay", 3)
    rig.outputs.apply_safe()
    assert rig.timers.seconds_to_next() is None
    assert (rig.pin(17), rig.pin(27)) == (0.0, 1.0)
