"""Reading [gpio]: the pin factory, the outputs and the inputs, each pin claimed once.

Pins are named as on the Raspberry Pi header: GPIO17, BCM17, 17, BOARD11 or J8:11 all become
"GPIO17" (BCM numbering), the name gpiozero's pin factories take.
"""

from __future__ import annotations

import re

from agent.config.model import GpioConfig, InputConfig, OutputConfig
from agent.config.presence import input_config
from agent.config.table import Table

_PIN = re.compile(r"(GPIO|BCM|BOARD|J8:)?([0-9]+)")
_PIN_HINT = "use GPIO0..GPIO27, BOARD<n> or a number"
_MAX_BCM = 27
# Raspberry Pi 40-pin header (J8), physical pin -> BCM GPIO; the pins not listed are power/ground.
_HEADER = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10,
    21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
    36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip


class InvalidPin(ValueError):
    """A pin name that is not a GPIO on the Raspberry Pi header; the message says why."""


def parse_pin(value: str | int) -> str:
    """Normalize GPIO17, BCM17, 17, BOARD11 or J8:11 to "GPIO17"; raise InvalidPin saying why."""
    match = _PIN.fullmatch(str(value).upper())
    if match is None:
        raise InvalidPin(f"unknown pin {value!r} ({_PIN_HINT})")
    prefix, number = match.group(1), int(match.group(2))
    if prefix in ("BOARD", "J8:"):
        if not 1 <= number <= 40:
            raise InvalidPin(f"unknown pin {value!r} ({_PIN_HINT})")
        if number not in _HEADER:
            raise InvalidPin(f"{value!r} is a power or ground pin, not a GPIO")
        number = _HEADER[number]
    elif number > _MAX_BCM:
        raise InvalidPin(f"unknown pin {value!r} ({_PIN_HINT})")
    return f"GPIO{number}"


def read_gpio(t: Table) -> GpioConfig:
    factories = ("auto", "lgpio", "rpigpio", "pigpio", "native", "mock")
    pin_factory = t.choice("pin_factory", factories, "auto")
    used: dict[str, str] = {}  # pin -> the key that claimed it first
    outputs: list[OutputConfig] = []
    for name, sub in t.tables("outputs"):
        pin = claim_pin(sub, used)
        active_high = sub.flag("active_high", True)
        initial = sub.on_off("initial", False)
        safe = sub.on_off("safe", initial)
        pwm = sub.flag("pwm", False)
        frequency = sub.integer("frequency_hz", 100, 1, 100000)
        level_min = sub.integer("level_min", 0, 0, 100)
        level_max = sub.integer("level_max", 100, 1, 100)
        if level_min > level_max:
            sub.problem("level_min", f"{level_min} is above level_max ({level_max})")
        max_pulse = sub.duration("max_pulse", 60.0, 0.01, 3600.0)
        pulse = sub.duration("pulse", min(1.0, max_pulse), 0.01, max_pulse)
        button = sub.flag("button", "pulse" in sub.raw)
        label = sub.text("label", "") or ""
        sub.finish()
        outputs.append(
            OutputConfig(
                name,
                pin,
                active_high,
                initial,
                safe,
                pwm=pwm,
                frequency_hz=frequency,
                level_min=level_min,
                level_max=level_max,
                pulse_s=pulse,
                max_pulse_s=max_pulse,
                button=button,
                label=label,
            )
        )
    inputs: list[InputConfig] = []
    output_names = {o.name for o in outputs}
    for name, sub in t.tables("inputs"):
        if name in output_names:
            t.problems.append(f"{sub.path}: name {name!r} is also used by gpio.outputs.{name}")
        pin = claim_pin(sub, used)
        pull_up = sub.flag("pull_up", True)
        bounce_ms = sub.integer("bounce_ms", 50, 0, 10000)
        inputs.append(input_config(sub, name, pin, pull_up, bounce_ms))
        sub.finish()
    t.finish()
    return GpioConfig(pin_factory, tuple(outputs), tuple(inputs))


def claim_pin(t: Table, used: dict[str, str]) -> str:
    value = t.value("pin", "string or integer", (str, int), True)
    if value is None:
        return ""
    try:
        pin = parse_pin(value)
    except InvalidPin as err:
        t.problem("pin", str(err))
        return ""
    if pin in used:
        t.problem("pin", f"{pin} is also used by {used[pin]}")
    else:
        used[pin] = t.where("pin")
    return pin
