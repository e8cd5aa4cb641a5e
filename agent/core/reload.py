"""What a reload (SIGHUP, `systemctl reload sipagent`) may change while the agent runs.

Pure: `plan_reload(running, loaded)` compares the running config with the one just read and
returns the config to run with from now on, what of the change it takes over, and what only
a restart can apply. Live: who may do what ([access], [calls]), the outputs' limits and their
Home Assistant face, the inputs' presence rules and texts, the presence note template and
watchers, and the log level. Everything that owns a socket, a pin, a file or a
subscription (the SIP account, the broker, pins, the outbox, watched contacts) keeps its
running value until a restart, and the plan names each such key.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from agent.config.model import Config, GpioConfig, InputConfig, OutputConfig
from agent.core.record import record

# Fields of one output or input that a reload applies; the others need new pins.
OUTPUT_LIVE = ("pulse_s", "max_pulse_s", "level_min", "level_max", "button", "label")
INPUT_LIVE: tuple[str, ...] = ("active_text", "inactive_text", "when_active", "when_inactive")
INPUT_LIVE += ("message_to",)
INPUT_LIVE += ("trigger", "label")
# Top-level sections taken over whole, and [presence] keys taken over one by one.
SECTIONS_LIVE = ("access", "calls", "log")
PRESENCE_LIVE = ("note", "watchers")
# The config's own file name is no setting.
IGNORED = ("source",)
# Model field -> the key a person writes, where the two differ (also agent.core.explain).
KEY_OF_FIELD = {
    "pulse_s": "pulse",
    "max_pulse_s": "max_pulse",
    "reg_expires": "register_expires",
    "listen_host": "listen",
    "listen_port": "listen",
    "reconnect_max_s": "reconnect_max",
    "send_timeout_s": "send_timeout",
    "failback_s": "failback",
    "brokers": "hosts",
    "code_lockout_s": "code_lockout",
}

Item = TypeVar("Item", OutputConfig, InputConfig)


@record
class ReloadPlan:
    """What a reload does: the config it runs with, what applies live, what waits."""

    config: Config  # what the agent runs with from now on
    applied: tuple[str, ...]  # changed keys taken over live
    needs_restart: tuple[str, ...]  # changed keys that keep their running value

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.needs_restart)


def plan_reload(running: Config, loaded: Config) -> ReloadPlan:
    applied: list[str] = []
    restart: list[str] = []
    for field in dataclasses.fields(Config):
        name = field.name
        old, new = getattr(running, name), getattr(loaded, name)
        if name in IGNORED or old == new:
            continue
        if name in SECTIONS_LIVE:
            applied += _differences(name, old, new)
        elif name == "more_accounts":  # [[sip.accounts]]: accounts are made at start
            restart.append("sip.accounts")
        elif name not in ("gpio", "presence"):
            restart += _differences(name, old, new)
    presence = running.presence
    for name in PRESENCE_LIVE:
        if getattr(presence, name) != getattr(loaded.presence, name):
            applied.append(f"presence.{name}")
            presence = dataclasses.replace(presence, **{name: getattr(loaded.presence, name)})
    for name in ("status", "watch"):  # the status at start; subscriptions to contacts
        if getattr(presence, name) != getattr(loaded.presence, name):
            restart.append(f"presence.{name}")
    gpio = _merge_gpio(running.gpio, loaded.gpio, applied, restart)
    config = dataclasses.replace(
        running,
        access=loaded.access,
        calls=loaded.calls,
        log=loaded.log,
        presence=presence,
        gpio=gpio,
    )
    return ReloadPlan(config, tuple(dict.fromkeys(applied)), tuple(dict.fromkeys(restart)))


def _merge_gpio(
    running: GpioConfig, loaded: GpioConfig, applied: list[str], restart: list[str]
) -> GpioConfig:
    if running.pin_factory != loaded.pin_factory:
        restart.append("gpio.pin_factory")
    lists = (applied, restart)
    outputs = tuple(
        _merge_one(f"gpio.outputs.{o.name}", o, loaded.output(o.name), OUTPUT_LIVE, *lists)
        for o in running.outputs
    )
    inputs = tuple(
        _merge_one(f"gpio.inputs.{i.name}", i, loaded.input(i.name), INPUT_LIVE, *lists)
        for i in running.inputs
    )
    running_names = {o.name for o in running.outputs} | {i.name for i in running.inputs}
    for kind, items in (("outputs", loaded.outputs), ("inputs", loaded.inputs)):
        restart += [f"gpio.{kind}.{x.name} (added)" for x in items if x.name not in running_names]
    for kind, items in (("outputs", running.outputs), ("inputs", running.inputs)):
        finder = loaded.output if kind == "outputs" else loaded.input
        restart += [f"gpio.{kind}.{x.name} (removed)" for x in items if finder(x.name) is None]
    return dataclasses.replace(running, outputs=outputs, inputs=inputs)


def _merge_one(
    where: str,
    running: Item,
    loaded: Item | None,
    live: tuple[str, ...],
    applied: list[str],
    restart: list[str],
) -> Item:
    if loaded is None:
        return running  # removed: reported by the caller; it keeps running until a restart
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(running):
        name = field.name
        if getattr(running, name) == getattr(loaded, name):
            continue
        key = f"{where}.{KEY_OF_FIELD.get(name, name)}"
        if name in live:
            changes[name] = getattr(loaded, name)
            applied.append(key)
        else:
            restart.append(key)
    return dataclasses.replace(running, **changes)


def _differences(where: str, old: Any, new: Any) -> list[str]:
    """The keys under `where` whose values differ (dataclasses are compared field by field)."""
    if old == new:
        return []
    if not (dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new)):
        return [where]
    found: list[str] = []
    for field in dataclasses.fields(old):
        key = f"{where}.{KEY_OF_FIELD.get(field.name, field.name)}"
        found += _differences(key, getattr(old, field.name), getattr(new, field.name))
    return found
