"""Incoming calls: always rejected, an allowed caller's action first, one record each."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from agent.config.load import parse_config
from agent.core.calls import CallOutcome, handle_call
from agent.core.dispatch import Dispatcher, Outcome
from lab.fakes import FakeDevice

CONFIG = """
[device]
id = "t"
[sip]
uri = "sip:t@pbx.example.org"
[access]
allow = ["sip:owner@pbx.example.org"]
require_code = ["lamp"]
rate_burst = 1
[access.users."sip:guest@pbx.example.org"]
commands = ["status"]
[calls]
reject_code = 486
{action}
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.lamp]
pin = 18
"""
OWNER = '"Owner" <sip:owner@PBX.example.org;transport=tcp>;tag=9'


class Rig:
    def __init__(self, action: str = 'action = "pulse gate 2s"') -> None:
        self.config = parse_config(CONFIG.format(action=action))
        self.device = FakeDevice()
        self.dispatcher = Dispatcher(self.config.access, self.device)

    def call(self, caller: str) -> CallOutcome:
        c = self.config
        return handle_call(caller, "192.0.2.7:5060", c.calls, c.access, self.dispatcher)


def test_the_owner_s_call_runs_the_action_and_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.core.calls")
    rig = Rig()
    before = datetime.now(UTC)
    outcome = rig.call(OWNER)
    assert rig.device.calls == [("pulse", "gate", 2.0)]
    assert (outcome.caller, outcome.code, outcome.authorized) == (
        "sip:owner@pbx.example.org",
        486,
        True,
    )
    assert outcome.action == Outcome(True, "pulse", "gate", "ok: gate pulsed 2s")
    assert before <= outcome.received <= datetime.now(UTC)
    assert caplog.messages[-1] == (
        "call from sip:owner@pbx.example.org at 192.0.2.7:5060 rejected with 486: "
        "action 'ok: gate pulsed 2s'"
    )


def test_the_action_runs_under_the_caller_s_rights_codes_and_rate_limit() -> None:
    rig = Rig('action = "on lamp"')
    guest = rig.call("sip:guest@pbx.example.org")  # may only use `status`
    assert guest.authorized is True and guest.action is not None
    assert guest.action.reply.startswith("error: 'on' is not allowed for you")
    owner = rig.call(OWNER)  # the lamp needs a one-time code, which a call cannot carry
    assert owner.action is not None
    assert owner.action.reply == ("error: 'lamp' needs a one-time code, and none is set up for you")
    # rate_burst = 1: the same bucket as the owner's messages
    limited = Outcome(True, None, None, "error: too many commands; try again in 2s")
    assert rig.call(OWNER).action == limited
    assert rig.call(OWNER).action == Outcome(True, None, None, "")
    assert rig.device.levels["lamp"] == 0.0


@pytest.mark.parametrize(
    ("caller", "action", "authorized", "said"),
    [
        ("sip:eve@pbx.example.org", 'action = "pulse gate 2s"', False, "not allowed"),
        (OWNER, "", True, "no action"),
    ],
)
def test_a_stranger_or_no_action_moves_nothing(
    caplog: pytest.LogCaptureFixture, caller: str, action: str, authorized: bool, said: str
) -> None:
    caplog.set_level(logging.INFO, logger="agent.core.calls")
    rig = Rig(action)
    outcome = rig.call(caller)
    assert (outcome.authorized, outcome.action, outcome.code) == (authorized, None, 486)
    assert rig.device.calls == [] and set(rig.device.levels.values()) == {0.0}
    assert caplog.messages[-1].endswith(f"at 192.0.2.7:5060 rejected with 486: {said}")
    assert caplog.messages[-1].startswith(f"call from {caller if not authorized else 'sip:'}")


def test_the_record_on_b_call_in() -> None:
    received = datetime(2026, 12, 1, 8, 30, 5, 123456, UTC)
    action = Outcome(True, "pulse", "gate", "ok: gate pulsed 2s")
    record = CallOutcome("sip:owner@x", 603, True, action, received).record()
    assert record == {
        "from": "sip:owner@x",
        "received": "2026-12-01T08:30:05.123Z",
        "authorized": True,
        "code": 603,
        "action": {"name": "pulse", "target": "gate", "result": "ok: gate pulsed 2s"},
    }
    stranger = CallOutcome("sip:eve@x", 603, False, None, received).record()
    assert stranger["action"] is None and stranger["authorized"] is False


def test_the_action_is_logged_as_coming_from_a_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.core.dispatch")
    Rig().call(OWNER)
    assert [r.getMessage() for r in caplog.records if r.name == "agent.core.dispatch"] == [
        "command 'pulse gate 2s' from sip:owner@pbx.example.org (call): ok: gate pulsed 2s"
    ]
