"""`sipagent status` with two SIP accounts (agent.core.status_report): each account's
registration in the JSON and in the lines, and none of that with a single account.

Oracle: the README's status section (one line per part; several accounts each by name).
"""

from __future__ import annotations

import pytest

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.registration import RegState
from agent.core.status_report import render, snapshot
from lab.fakes import FakeNotifier, FakePins, FakeSip

CONFIG = """
[device]
id = "porch"
[sip]
name = "pbx"
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
{accounts}
[access]
allow = ["sip:owner@pbx.example.org"]
"""
PUBLIC = """
[[sip.accounts]]
name = "public"
uri = "sip:porch@public.example.net"
registrar = "sip:public.example.net"
password = "pw2"
"""


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def agent(accounts: str) -> Agent:
    config = parse_config(CONFIG.format(accounts=accounts))
    a = Agent(config, FakeSip(), FakePins(()), None, FakeNotifier())
    a.started_sip()
    a.on_registration(RegState("registered", 200, "OK", 300))
    return a


def test_two_accounts_each_by_name() -> None:
    a = agent(PUBLIC)
    a.on_registration(RegState("failed", 403, "Forbidden", 0), "public")
    status = snapshot(a, {}, None)
    assert status["accounts"] == {
        "pbx": {"state": "registered", "code": 200, "reason": "OK", "expires": 300},
        "public": {"state": "failed", "code": 403, "reason": "Forbidden", "expires": 0},
    }
    [line] = [x for x in render(status) if x.startswith("registration:")]
    assert line == "registration:  pbx registered (200 OK); public failed (403 Forbidden)"


def test_one_account_has_no_accounts_part() -> None:
    status = snapshot(agent(""), {}, None)
    assert status["accounts"] is None
    [line] = [x for x in render(status) if x.startswith("registration:")]
    assert line.startswith("registration:  registered")
