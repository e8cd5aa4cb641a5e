"""Reload (SIGHUP, `systemctl reload sipagent`): what applies live, what waits for a restart.

The plan is pure (agent.core.reload) and checked with a table; the end-to-end tests
(test_reload_e2e.py) send SIGHUP to a real agent registered at Kamailio.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config.load import parse_config
from agent.core.reload import plan_reload
from agent.core.reloader import Reloader

BASE = """
[device]
id = "porch"
[sip]
uri = "sip:porch@127.0.0.1"
listen = "127.0.0.1:5070"
presence = "serve"
[access]
allow = ["sip:owner@127.0.0.1"]
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
max_pulse = "10s"
[gpio.inputs.door]
pin = 27
[presence]
note = "door {door}"
"""


@pytest.mark.parametrize(
    ("old", "new", "applied", "needs_restart"),
    [
        ("", "", [], []),
        (
            'allow = ["sip:owner@127.0.0.1"]',
            'allow = ["sip:owner@127.0.0.1", "sip:bob@127.0.0.1"]',
            ["access.allow"],
            [],
        ),
        ('max_pulse = "10s"', 'max_pulse = "30s"', ["gpio.outputs.gate.max_pulse"], []),
        (
            'max_pulse = "10s"',
            'max_pulse = "10s"\npulse = "2s"\nlabel = "Open gate"',
            ["gpio.outputs.gate.pulse", "gpio.outputs.gate.button", "gpio.outputs.gate.label"],
            [],
        ),
        ('note = "door {door}"', 'note = "the door is {door}"', ["presence.note"], []),
        (
            "[gpio.inputs.door]\npin = 27",
            '[gpio.inputs.door]\npin = 27\n[gpio.inputs.door.when_active]\nstatus = "busy"',
            ["gpio.inputs.door.when_active"],
            [],
        ),
        ('listen = "127.0.0.1:5070"', 'listen = "127.0.0.1:5071"', [], ["sip.listen"]),
        (
            "[gpio.outputs.gate]\npin = 17",
            "[gpio.outputs.gate]\npin = 18",
            [],
            ["gpio.outputs.gate.pin"],
        ),
        (
            "[gpio.inputs.door]\npin = 27",
            "[gpio.inputs.door]\npin = 27\n[gpio.inputs.bell]\npin = 22",
            [],
            ["gpio.inputs.bell (added)"],
        ),
        ('id = "porch"', 'id = "gate"', [], ["device.id", "device.name"]),
        (
            'pin_factory = "mock"',
            'pin_factory = "mock"\n[log]\nlevel = "debug"',
            ["log.level"],
            [],
        ),
        ("[presence]", '[presence]\nstatus = "away"', [], ["presence.status"]),
    ],
)
def test_what_a_reload_applies_and_what_waits_for_a_restart(old, new, applied, needs_restart):
    running = parse_config(BASE)
    plan = plan_reload(running, parse_config(BASE.replace(old, new, 1)))
    assert (list(plan.applied), list(plan.needs_restart)) == (applied, needs_restart)


def test_the_merged_config_keeps_what_needs_a_restart_and_takes_the_rest():
    running = parse_config(BASE)
    loaded = parse_config(
        BASE.replace("pin = 17", 'pin = 18\nmax_pulse = "30s"')
        .replace('max_pulse = "10s"\n', "")
        .replace('id = "porch"', 'id = "gate"')
        .replace('allow = ["sip:owner@127.0.0.1"]', 'allow = ["sip:bob@127.0.0.1"]')
    )
    plan = plan_reload(running, loaded)
    gate = plan.config.gpio.output("gate")
    assert gate is not None
    assert (gate.pin, gate.max_pulse_s) == ("GPIO17", 30.0)  # same pin, new limit
    assert plan.config.device.id == "porch"
    assert plan.config.access.allow == ("sip:bob@127.0.0.1",)


def test_many_changes_at_once_are_all_told_and_the_live_ones_all_taken():
    running = parse_config(BASE + "[gpio.inputs.bell]\npin = 22\n")
    changed = (
        BASE.replace('allow = ["sip:owner@127.0.0.1"]', 'allow = ["sip:bob@127.0.0.1"]')
        .replace('pin_factory = "mock"', 'pin_factory = "native"')
        .replace('listen = "127.0.0.1:5070"', 'listen = "127.0.0.1:5071"')
        .replace('id = "porch"', 'id = "shed"')
        .replace('presence = "serve"', 'presence = "off"')
        .replace('note = "door {door}"', 'note = "the door is {door}"\nwatchers = []')
        .replace("[gpio.inputs.door]\npin = 27", '[gpio.inputs.door]\npin = 27\nlabel = "Door"')
        + '[gpio.outputs.lamp]\npin = 18\n[calls]\naction = "pulse gate"\n'
        + '[log]\nlevel = "debug"\n'
    )
    loaded = parse_config(changed)
    plan = plan_reload(running, loaded)
    assert plan.applied == (
        "access.allow",
        "log.level",
        "calls.action",
        "presence.note",
        "presence.watchers",
        "gpio.inputs.door.label",
    )
    assert plan.needs_restart == (
        "device.id",
        "device.name",
        "sip.listen",
        "sip.presence",
        "gpio.pin_factory",
        "gpio.outputs.lamp (added)",
        "gpio.inputs.bell (removed)",
    )
    config = plan.config
    assert (config.access, config.calls, config.log) == (loaded.access, loaded.calls, loaded.log)
    assert (config.presence.note, config.presence.watchers) == ("the door is {door}", ())
    assert config.presence.status == running.presence.status
    door = config.gpio.input("door")
    assert door is not None and door.label == "Door"
    assert config.gpio.input("bell") == running.gpio.input("bell")  # runs until a restart
    assert config.gpio.pin_factory == "mock" and config.sip == running.sip
    assert plan.changed and not plan_reload(running, running).changed
    # Another file name is no change; a broker where there was none is one.
    moved = dataclasses.replace(running, source="/etc/sipagent/other.toml")
    assert not plan_reload(running, moved).changed
    with_mqtt = parse_config(BASE + '[mqtt]\nhost = "localhost"\n')
    assert plan_reload(parse_config(BASE), with_mqtt).needs_restart == ("mqtt",)


class _Parts:
    def __init__(self) -> None:
        self.configs: list[object] = []

    def reconfigure(self, config: object) -> None:
        self.configs.append(config)


def test_a_config_with_problems_changes_nothing_and_says_why(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text(BASE)
    from agent.config.load import load_config

    running = load_config(str(path))
    agent, outputs = _Parts(), _Parts()
    reloader = Reloader(running, agent, outputs, load_config)
    path.write_text(BASE.replace('max_pulse = "10s"', 'max_pulse = "forever"'))
    outcome = reloader.reload()
    assert outcome == "reload refused (1 problem)"
    assert reloader.config is running and agent.configs == [] and outputs.configs == []
    assert reloader.last is not None and not reloader.last["ok"]
    assert reloader.last["problems"][0].startswith("gpio.outputs.gate.max_pulse:")
    path.write_text(BASE.replace('max_pulse = "10s"', 'max_pulse = "20s"'))
    assert reloader.reload() == "reloaded"
    assert reloader.last["applied"] == ["gpio.outputs.gate.max_pulse"]
    assert agent.configs == [reloader.config]
