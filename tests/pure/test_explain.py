"""`check-config --explain`, presence changed one part at a time, and the diagnostics payload."""

from __future__ import annotations

import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from golden import GOLDEN, assert_golden

from agent.config.load import parse_config
from agent.core.capabilities import Capabilities, TlsLibrary
from agent.core.diagnostics import Diagnostics, pjproject_outdated
from agent.core.explain import explain
from agent.core.logfields import journal_fields
from agent.core.presence import PresenceError, PresenceState

CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@127.0.0.1"
password = "hunter2"
[access]
allow = ["sip:owner@127.0.0.1"]
require_code = ["gate"]
rate_burst = 3
[access.users."sip:alice@127.0.0.1"]
commands = ["pulse"]
outputs = ["gate"]
totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
[mqtt]
host = "localhost"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
pulse = "2s"
label = "Open gate"
[gpio.inputs.bell]
pin = 22
trigger = true
"""


def _explain(text: str = CONFIG) -> list[str]:
    return explain(parse_config(text), tomllib.loads(text))


def test_effective_values_say_which_are_defaults_and_never_show_secrets():
    lines = _explain()
    assert 'sip.transport = "udp"  (default)' in lines
    assert 'sip.listen = "0.0.0.0:5060"  (default)' in lines
    assert "gpio.outputs.gate.pulse = 2.0" in lines
    assert "gpio.outputs.gate.button = true  (default)" in lines  # because pulse is set
    assert "gpio.inputs.bell.trigger = true" in lines
    assert "sip.password = (set)" in lines
    text = "\n".join(lines)
    assert "hunter2" not in text and "JBSWY3DP" not in text


def test_who_may_do_what():
    lines = _explain()
    assert "sip:owner@127.0.0.1: every command, every output (access.allow)" in lines
    assert "sip:alice@127.0.0.1: help, pulse; gate; one-time code set up" in lines
    assert any(
        line.startswith("mqtt:local (B/command, group commands, Home Assistant's buttons): "
                        "nothing (add 'mqtt:local' to access.allow)")
        for line in lines
    )  # fmt: skip
    assert "anyone else: refused with 'error: forbidden'; nothing changes" in lines
    assert any(line.startswith("one-time code needed for: gate") for line in lines)
    assert any(line.startswith("rate: 3 commands at once") for line in lines)


def test_which_topics_and_entities_will_exist():
    lines = _explain()
    joined = "\n".join(lines)
    assert "in  sipagent/porch/presence/status/set" in joined
    assert "out sipagent/porch/input/bell/event" in joined
    assert any(line.split()[:2] == ["button", "output_gate"] for line in lines)
    assert any(line.split()[:2] == ["device_automation", "input_bell_pressed"] for line in lines)
    no_mqtt = CONFIG.replace('[mqtt]\nhost = "localhost"\n', "")
    assert "none: no [mqtt] broker configured" in _explain(no_mqtt)


@pytest.mark.parametrize(
    ("config", "golden"),
    [
        (CONFIG, "explain-porch.txt"),
        # serve mode, silent refusals, calls, groups, several brokers, discovery off, PWM,
        # inputs active low and high, watched contacts, IPv6 listen address, limited users
        ((GOLDEN / "shed.toml").read_text(), "explain-shed.txt"),
        # no broker, a user with every right, nobody may watch
        ((GOLDEN / "minimal.toml").read_text(), "explain-minimal.txt"),
    ],
    ids=["porch", "shed", "minimal"],
)
def test_the_whole_explanation_reads_as_written_down(config: str, golden: str):
    assert_golden(golden, _explain(config))


def test_the_command_line_prints_it(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", "--explain", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"{path}: ok"
    assert "# who may do what" in result.stdout


@pytest.mark.parametrize(
    ("status", "note", "want"),
    [
        ("busy", None, ("busy", "door {door}")),  # the template stays
        ("AWAY", None, ("away", "door {door}")),
        ("online", None, ("available", "door {door}")),
        (None, "at lunch", ("available", "at lunch")),
        (None, "a {brace}", ("available", "a {{brace}}")),  # shown as written
        (None, "", ("available", "door {door}")),  # empty: the configured template
    ],
)
def test_presence_changes_one_part_at_a_time(status, note, want):
    state = PresenceState("available", "door {door}")
    if status is not None:
        state = state.with_status(status)
    if note is not None:
        state = state.with_note(note, "door {door}")
    assert (state.status, state.template) == want


@pytest.mark.parametrize(("status", "note"), [("sleeping", None), (None, "x" * 201)])
def test_presence_parts_refused(status, note):
    state = PresenceState("available", "")
    with pytest.raises(PresenceError):
        if status is not None:
            state.with_status(status)
        else:
            state.with_note(note, "")


@pytest.mark.parametrize(
    ("version", "outdated"),
    # 2.16 lacks 2.17's fixes of parts the agent runs (agent.core.capabilities.KNOWN_FIXES).
    [("2.15.1", True), ("2.14", True), ("2.16", True), ("2.17.0-dev", False), ("x", True)],
)
def test_pjproject_outdated(version, outdated):
    assert pjproject_outdated(version) is outdated


def test_the_last_error_is_an_error_or_a_failed_registration_never_a_refusal():
    diagnostics = Diagnostics(Capabilities("2.15.1", False, TlsLibrary("")))
    log = logging.getLogger("test.diagnostics")
    log.addHandler(diagnostics.errors)
    try:
        first = diagnostics.changed()
        assert first is not None and first["last_error"] == "" and first["pjproject_outdated"]
        log.warning("refused 'pulse gate' from sip:eve@x: not allowed")
        assert diagnostics.changed() is None
        log.warning(
            "registration failed for sip:porch@x: 408 Request Timeout",
            extra=journal_fields(registration="failed"),
        )
        payload = diagnostics.changed()
        assert payload is not None
        assert payload["last_error"] == "registration failed for sip:porch@x: 408 Request Timeout"
        log.error("outbox: %s", "disk full " * 100)
        assert len(str(diagnostics.payload()["last_error"])) == 250  # HA keeps 255 at most
    finally:
        log.removeHandler(diagnostics.errors)
