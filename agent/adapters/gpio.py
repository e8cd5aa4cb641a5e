"""The gpiozero adapter: the device's outputs, behind names from the config.

pulse and blink run on the owner loop's timers (agent.core.timers), not on gpiozero's blink
threads: every pin write then happens on the one thread that also reports state, a new
command cancels a running pulse by dropping its timers (no thread to join, no write racing
the cancel), and the steps are unit-testable with a fake clock. The cost is that a loop
busy for a few ms delays a step by as much; the loop never blocks for long.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import TypeAlias

from gpiozero import Device, DigitalOutputDevice, PWMOutputDevice
from gpiozero.pins import Factory

from agent.config.model import GpioConfig, OutputConfig
from agent.core.durations import format_duration
from agent.core.timers import Timers

log = logging.getLogger(__name__)

# pin_factory value -> (module, class); "auto" lets gpiozero choose as it always does.
_FACTORIES = {
    "mock": ("gpiozero.pins.mock", "MockFactory"),
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
}


class GpioUnavailable(Exception):
    """The configured pin factory cannot drive pins on this machine."""


def make_pin_factory(name: str) -> Factory | None:
    """The pin factory named by `gpio.pin_factory` (None: gpiozero's own choice)."""
    if name == "auto":
        return None
    module_name, class_name = _FACTORIES[name]
    try:
        module = importlib.import_module(module_name)
        if name == "mock":
            # Mock pins that also do PWM, so PWM outputs work without a board.
            factory: Factory = module.MockFactory(pin_class=module.MockPWMPin)
        else:
            factory = getattr(module, class_name)()
    except Exception as err:  # each backend fails in its own way when its hardware is absent
        raise GpioUnavailable(f"gpio.pin_factory '{name}' cannot start here: {err}") from err
    return factory


StateListener = Callable[[str, bool], None]
OutputDevice: TypeAlias = DigitalOutputDevice | PWMOutputDevice


class Outputs:
    """Named outputs. Every change is reported to `on_change(name, is_on)` on the owner thread."""

    def __init__(
        self,
        config: GpioConfig,
        on_change: StateListener | None = None,
        timers: Timers | None = None,
    ) -> None:
        self._factory = make_pin_factory(config.pin_factory)
        if self._factory is not None:
            # Devices made later (inputs, by other modules) use the same factory.
            Device.pin_factory = self._factory
        self.timers = timers or Timers()
        self._configs: dict[str, OutputConfig] = {o.name: o for o in config.outputs}
        self._devices: dict[str, OutputDevice] = {}
        self._activity: dict[str, str] = {}  # name -> "pulse 2s" / "blink": what runs now
        self._on_change = on_change
        for out in config.outputs:
            # Open at the *safe* level first: after a crash a pin must not stay on just
            # because the process died before it could switch it off.
            device: OutputDevice
            if out.pwm:
                device = PWMOutputDevice(
                    out.pin,
                    active_high=out.active_high,
                    initial_value=1.0 if out.safe else 0.0,
                    frequency=out.frequency_hz,
                    pin_factory=self._factory,
                )
            else:
                device = DigitalOutputDevice(
                    out.pin,
                    active_high=out.active_high,
                    initial_value=out.safe,
                    pin_factory=self._factory,
                )
            self._devices[out.name] = device
            log.info("output %s on %s ready (safe state %s)", out.name, out.pin, _word(out.safe))

    def reconfigure(self, outputs: Sequence[OutputConfig]) -> None:
        """New limits from a reload (agent.core.reload keeps the pins' own settings as they are)."""
        for out in outputs:
            if out.name in self._configs:
                self._configs[out.name] = out

    def set_listener(self, on_change: StateListener | None) -> None:
        self._on_change = on_change

    def output_names(self) -> Sequence[str]:
        return list(self._devices)

    def output_config(self, name: str) -> OutputConfig:
        return self._configs[name]

    def output_is_on(self, name: str) -> bool:
        return bool(self._devices[name].value)

    def level(self, name: str) -> float:
        """0.0..1.0 (digital outputs: 0 or 1)."""
        return float(self._devices[name].value)

    def activity(self, name: str) -> str | None:
        """What is running on the output (a pulse or a blink), if anything."""
        return self._activity.get(name) if self.timers.pending(name) else None

    def state_payload(self, name: str) -> str:
        """The retained `B/output/<name>/state` payload: ON/OFF, or JSON with the PWM level."""
        word = "ON" if self.output_is_on(name) else "OFF"
        if not self._configs[name].pwm:
            return word
        return json.dumps({"state": word, "level": round(self.level(name) * 100, 1)})

    # -- changes (each one cancels what was running on that output) -----------------------

    def set_output(self, name: str, on: bool) -> None:
        self._cancel(name)
        self._write(name, 1.0 if on else 0.0)

    def set_level(self, name: str, level: float) -> None:
        """A PWM output's level, 0.0..1.0."""
        self._cancel(name)
        self._write(name, min(1.0, max(0.0, level)))

    def pulse(self, name: str, seconds: float) -> None:
        """On now, off after `seconds`; returns at once."""
        self._cancel(name)
        self._activity[name] = f"pulse {format_duration(seconds)}"
        self._write(name, 1.0)
        self.timers.call_later(seconds, name, lambda: self._end(name))

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None:
        """On for `on_s`, off for `off_s`, `count` times (None: until the next command)."""
        self._cancel(name)
        self._activity[name] = "blink" if count is None else f"blink x{count}"

        def step(on: bool, left: int | None) -> None:
            # State is announced at the start and the end of a blink, not on every step.
            self._write(name, 1.0 if on else 0.0, announce=False)
            if not on and left is not None:
                left -= 1
                if left <= 0:
                    self._end(name)
                    return
            self.timers.call_later(on_s if on else off_s, name, lambda: step(not on, left))

        self._write(name, 1.0)
        self.timers.call_later(on_s, name, lambda: step(False, count))

    def _end(self, name: str) -> None:
        log.info("output %s: %s done", name, self._activity.pop(name, "timer"))
        self._write(name, 0.0)

    def _cancel(self, name: str) -> None:
        if self.timers.cancel(name):
            log.info("output %s: %s cancelled", name, self._activity.get(name, "timer"))
        self._activity.pop(name, None)

    def _write(self, name: str, level: float, announce: bool = True) -> None:
        device = self._devices[name]
        if isinstance(device, PWMOutputDevice):
            device.value = level
        elif level > 0:
            device.on()
        else:
            device.off()
        if announce and self._on_change is not None:
            self._on_change(name, level > 0)

    def apply_initial(self) -> None:
        for name, cfg in self._configs.items():
            if cfg.initial != cfg.safe:
                self.set_output(name, cfg.initial)

    def apply_safe(self) -> None:
        for name, cfg in self._configs.items():
            self.set_output(name, cfg.safe)

    def close(self) -> None:
        for name in list(self._devices):
            self.timers.cancel(name)
        for device in self._devices.values():
            device.close()
        self._devices.clear()


def _word(on: bool) -> str:
    return "on" if on else "off"
