"""The gpiozero adapter: the device's outputs, behind names from the config."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence

from gpiozero import Device, DigitalOutputDevice
from gpiozero.pins import Factory

from agent.config import GpioConfig, OutputConfig

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
        factory: Factory = getattr(importlib.import_module(module_name), class_name)()
    except Exception as err:  # each backend fails in its own way when its hardware is absent
        raise GpioUnavailable(f"gpio.pin_factory '{name}' cannot start here: {err}") from err
    return factory


StateListener = Callable[[str, bool], None]


class Outputs:
    """Named digital outputs. Every change is reported to `on_change(name, is_on)`."""

    def __init__(self, config: GpioConfig, on_change: StateListener | None = None) -> None:
        self._factory = make_pin_factory(config.pin_factory)
        if self._factory is not None:
            # Devices made later (inputs, by other modules) use the same factory.
            Device.pin_factory = self._factory
        self._configs: dict[str, OutputConfig] = {o.name: o for o in config.outputs}
        self._devices: dict[str, DigitalOutputDevice] = {}
        self._on_change = on_change
        for out in config.outputs:
            # Open at the *safe* level first: after a crash a pin must not stay on just
            # because the process died before it could switch it off.
            self._devices[out.name] = DigitalOutputDevice(
                out.pin,
                active_high=out.active_high,
                initial_value=out.safe,
                pin_factory=self._factory,
            )
            log.info("output %s on %s ready (safe state %s)", out.name, out.pin, _word(out.safe))

    def set_listener(self, on_change: StateListener | None) -> None:
        self._on_change = on_change

    def output_names(self) -> Sequence[str]:
        return list(self._devices)

    def output_is_on(self, name: str) -> bool:
        return bool(self._devices[name].value)

    def set_output(self, name: str, on: bool) -> None:
        device = self._devices[name]
        if on:
            device.on()
        else:
            device.off()
        if self._on_change is not None:
            self._on_change(name, on)

    def apply_initial(self) -> None:
        for name, cfg in self._configs.items():
            if cfg.initial != cfg.safe:
                self.set_output(name, cfg.initial)

    def apply_safe(self) -> None:
        for name, cfg in self._configs.items():
            self.set_output(name, cfg.safe)

    def close(self) -> None:
        for device in self._devices.values():
            device.close()
        self._devices.clear()


def _word(on: bool) -> str:
    return "on" if on else "off"
