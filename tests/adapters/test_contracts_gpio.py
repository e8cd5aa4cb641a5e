"""The OutputPins and InputPins contracts, held by FakePins and the gpiozero adapters on
MockFactory pins alike (as test_contracts.py says); pulses and blinks on a clock the test moves."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from agent.adapters.gpio import Outputs
from agent.adapters.inputs import Inputs
from agent.config.load import parse_config
from agent.core import ports
from agent.core.timers import Timers
from lab.fakes import Clock, FakePins

GPIO = """
[device]
id = "t"
[sip]
uri = "sip:t@127.0.0.1"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
pulse = "2s"
[gpio.outputs.lamp]
pin = 18
safe = true
[gpio.outputs.dimmer]
pin = 12
pwm = true
level_min = 20
[gpio.inputs.door]
pin = 27
[gpio.inputs.bell]
pin = 22
pull_up = false
active_state = "low"
"""

# -- OutputPins: gpiozero on MockFactory pins, and FakePins --------------------------------


@dataclass
class OutputSide:
    """Outputs with their pulses and blinks on timers of a clock the test moves."""

    pins: ports.OutputPins
    timers: Timers
    heard: list[tuple[str, bool]]  # what the listener was told

    def advance(self, seconds: float) -> None:
        """Run the timers as the owner loop would, up to `seconds` later."""
        clock = self.timers.clock
        assert isinstance(clock, Clock)
        end = clock.now + seconds
        while (due := self.timers.seconds_to_next()) is not None and clock.now + due <= end:
            clock.now += due
            self.timers.run_due()
        clock.now = end


@pytest.fixture(params=["fake", "real"])
def outputs(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OutputSide]:
    monkeypatch.setattr(Device, "pin_factory", None)  # Outputs sets its own: undone after
    gpio, timers, heard = parse_config(GPIO).gpio, Timers(Clock()), []
    pins: FakePins | Outputs
    if request.param == "fake":
        pins = FakePins(gpio.outputs, timers=timers)
    else:
        pins = Outputs(gpio, timers=timers)
    pins.set_listener(lambda name, on: heard.append((name, on)))
    yield OutputSide(pins, timers, heard)
    if isinstance(pins, Outputs):
        pins.close()


def test_outputs_are_named_in_config_order_and_start_safe(outputs: OutputSide) -> None:
    pins = outputs.pins
    assert list(pins.output_names()) == ["gate", "lamp", "dimmer"]
    assert pins.output_config("gate").pin == "GPIO17" and pins.output_config("dimmer").pwm
    assert [pins.output_is_on(n) for n in pins.output_names()] == [False, True, False]
    assert [pins.level(n) for n in pins.output_names()] == [0.0, 1.0, 0.0]
    assert [pins.state_payload(n) for n in ("gate", "lamp")] == ["OFF", "ON"]
    assert json.loads(pins.state_payload("dimmer")) == {"state": "OFF", "level": 0.0}
    assert [pins.activity(n) for n in pins.output_names()] == [None, None, None]


def test_set_output_switches_and_tells_the_listener(outputs: OutputSide) -> None:
    pins = outputs.pins
    pins.set_output("gate", True)
    assert pins.output_is_on("gate") and pins.level("gate") == 1.0
    assert pins.state_payload("gate") == "ON"
    pins.set_output("lamp", False)
    pins.set_output("gate", False)
    assert not pins.output_is_on("gate") and pins.state_payload("gate") == "OFF"
    assert outputs.heard == [("gate", True), ("lamp", False), ("gate", False)]


def test_set_level_dims_a_pwm_output_within_0_and_1(outputs: OutputSide) -> None:
    pins = outputs.pins
    pins.set_level("dimmer", 0.333)
    assert pins.level("dimmer") == pytest.approx(0.333) and pins.output_is_on("dimmer")
    assert json.loads(pins.state_payload("dimmer")) == {"state": "ON", "level": 33.3}
    pins.set_level("dimmer", 1.5)
    assert pins.level("dimmer") == 1.0
    pins.set_level("dimmer", -0.5)
    assert pins.level("dimmer") == 0.0 and not pins.output_is_on("dimmer")
    pins.set_level("gate", 0.5)  # a digital output is on or off
    assert pins.level("gate") == 1.0 and pins.state_payload("gate") == "ON"
    assert outputs.heard == [("dimmer", True), ("dimmer", True), ("dimmer", False), ("gate", True)]


def test_pulse_is_on_at_once_and_off_after_its_time(outputs: OutputSide) -> None:
    pins = outputs.pins
    pins.pulse("gate", 2.0)
    assert pins.output_is_on("gate") and pins.activity("gate") == "pulse 2s"
    outputs.advance(1.9)
    assert pins.output_is_on("gate") and pins.activity("gate") == "pulse 2s"
    outputs.advance(0.2)
    assert not pins.output_is_on("gate") and pins.activity("gate") is None
    assert pins.state_payload("gate") == "OFF"
    assert outputs.heard == [("gate", True), ("gate", False)]


def test_a_new_command_ends_a_running_pulse(outputs: OutputSide) -> None:
    pins = outputs.pins
    pins.pulse("gate", 2.0)
    pins.set_output("gate", True)  # `on gate` while the pulse runs
    assert pins.activity("gate") is None
    outputs.advance(5)
    assert pins.output_is_on("gate")
    pins.pulse("gate", 0.5)
    assert pins.activity("gate") == "pulse 500ms"
    outputs.advance(0.5)
    assert not pins.output_is_on("gate")


def test_blink_counts_its_flashes_and_announces_only_start_and_end(outputs: OutputSide) -> None:
    pins = outputs.pins
    pins.blink("gate", 0.25, 0.5, 2)
    seen = []
    for _ in range(8):  # exact binary fractions: no rounding at the phase edges
        seen.append((pins.output_is_on("gate"), pins.activity("gate")))
        outputs.advance(0.125)
    flash, dark = (True, "blink x2"), (False, "blink x2")
    assert seen == [flash, flash, dark, dark, dark, dark, flash, flash]
    outputs.advance(0.125)  # the second flash ends: done
    assert (pins.output_is_on("gate"), pins.activity("gate")) == (False, None)
    assert outputs.timers.seconds_to_next() is None
    assert outputs.heard == [("gate", True), ("gate", False)]
    pins.blink("gate", 0.1, 0.1, None)
    outputs.advance(10.05)
    assert pins.activity("gate") == "blink"
    pins.set_output("gate", False)
    assert outputs.timers.seconds_to_next() is None and pins.activity("gate") is None


# -- InputPins: gpiozero on MockFactory pins, and FakePins ---------------------------------


@dataclass
class InputSide:
    pins: ports.InputPins
    contact: Callable[[str, bool], None]  # make an input active or not, as its contact would


@pytest.fixture(params=["fake", "real"])
def inputs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[InputSide]:
    configs = {c.name: c for c in parse_config(GPIO).gpio.inputs}
    if request.param == "fake":
        fake = FakePins((), inputs=configs)
        yield InputSide(fake, fake.active.__setitem__)
        return
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    real = Inputs(tuple(configs.values()), lambda event: None)

    def drive(name: str, active: bool) -> None:
        cfg = configs[name]
        # gpiozero takes a pulled-up input as active low; `active_state` may invert that.
        high = (active != cfg.inverted) != cfg.pull_up
        pin = factory.pin(int(cfg.pin.removeprefix("GPIO")))
        pin.drive_high() if high else pin.drive_low()

    yield InputSide(real, drive)
    real.close()


def test_inputs_are_named_in_config_order(inputs: InputSide) -> None:
    assert list(inputs.pins.names()) == ["door", "bell"]


@pytest.mark.parametrize("name", ["door", "bell"])  # bell: pulled down, active low
def test_an_input_reads_active_as_its_contact_changes(inputs: InputSide, name: str) -> None:
    other = {"door": "bell", "bell": "door"}[name]
    inputs.contact(other, False)
    for active in (True, False, True):
        inputs.contact(name, active)
        assert inputs.pins.is_active(name) is active
        assert inputs.pins.is_active(other) is False
