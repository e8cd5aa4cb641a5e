"""The status as data (`snapshot` of a core.Agent with real mock pins) and as text (`render`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import pytest
from golden import assert_golden

from agent import __version__
from agent.adapters.gpio import Outputs
from agent.adapters.inputs import Inputs
from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.capabilities import Capabilities, TlsLibrary
from agent.core.events import MqttConnected
from agent.core.presence_keeper import PresenceKeeper
from agent.core.registration import RegState
from agent.core.status_report import render, snapshot
from agent.core.topics import Topics
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakeSip, FakeSipPresence

CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
presence = "publish"
[mqtt]
host = "localhost"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.lamp]
pin = 18
[gpio.outputs.fan]
pin = 12
pwm = true
[gpio.inputs.door]
pin = 27
active_text = "open"
inactive_text = "closed"
[presence]
note = "door {door}"
"""

# The PyPI wheel as agent.adapters.sip.binding.detect finds it (pjproject 2.15.1, its own
# OpenSSL inside).
WHEEL = Capabilities("2.15.1", False, TlsLibrary("OpenSSL 1.0.2k-fips 26 Jan 2017", bundled=True))


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    config = parse_config(CONFIG)
    mqtt = FakeLink()
    mqtt.broker = "broker.example.org:1883"
    outputs = Outputs(config.gpio)
    inputs = Inputs(config.gpio.inputs, lambda event: None)
    keeper = PresenceKeeper(
        config, FakeSipPresence(), inputs, outputs, mqtt, lambda to, body: None, Topics("x")
    )
    agent = Agent(config, FakeSip(), outputs, mqtt, FakeNotifier(), keeper, FakeOutbox())
    outputs.set_listener(agent.on_output_changed)
    agent.started_sip()
    agent.handle(MqttConnected())
    yield agent
    inputs.close()
    outputs.close()


def test_snapshot_is_the_agent_as_it_is(agent: Agent) -> None:
    agent.started = time.monotonic() - 3725.0
    agent.outputs.pulse("gate", 2.0)
    agent.outputs.set_level("fan", 0.12345)
    agent.on_registration(RegState("failed", 408, "Request Timeout", 0, retry_in_s=4.24, attempt=3))
    agent.counters.bump("sip.message.refused", 2)
    agent.diagnostics.capabilities = WHEEL
    agent.about += [lambda: WHEEL.status_line(date(2026, 12, 1)), lambda: "SIP transactions 3"]
    reload = {"at": "2026-12-01T00:00:00+00:00", "ok": True, "applied": [], "needs_restart": []}
    status = snapshot(agent, {"status.client.refused": 1, "status.request.refused": 0}, reload)
    assert status == {
        "version": __version__,
        "device": "porch",
        "config": "<string>",
        "uptime_s": 3725,
        "ready": False,
        "summary": "SIP failed (408 Request Timeout), retry 3 in 4s; "
        "MQTT connected to broker.example.org:1883",
        "registration": {"state": "failed", "code": 408, "reason": "Request Timeout",
                         "expires": 0, "retry_in": 4.2, "attempt": 3},
        "accounts": None,  # one account: B/registration says it all
        "public_address": None,
        "mqtt": {"connected": True, "broker": "broker.example.org:1883"},
        "outputs": {
            "gate": {"on": True, "level": None, "running": "pulse 2s"},
            "lamp": {"on": False, "level": None, "running": None},
            "fan": {"on": True, "level": 12.3, "running": None},
        },
        "inputs": {"door": {"active": False, "text": "closed"}},
        "presence": {"status": "available", "note": "door closed", "mode": "publish"},
        "outbox": {"pending": 0, "capacity": 10000, "when_full": "drop_oldest",
                   "dropped": 0, "refused": 0, "durable": True, "trouble": None,
                   "in_memory": 0, "memory_bytes": 0, "disk_bytes": 0, "max_disk": 16777216},
        "counters": {"sip.message.refused": 2, "status.client.refused": 1},
        "diagnostics": {"pjproject": "2.15.1", "pjproject_outdated": True,
                        "deferred_responses": False, "tls": True,
                        "last_error": "", "last_error_at": None,
                        "pjproject_details": WHEEL.diagnostics(date.today())},
        "sip_stack": [
            "pjproject 2.15.1, lacks 8 security fixes of 2.16 and 2.17, 200 before storing, "
            "OpenSSL 1.0.2k-fips 26 Jan 2017 (bundled, upstream end of life 2019-12-31)",
            "SIP transactions 3",
        ],
        "reload": reload,
    }  # fmt: skip
    assert_golden("status-porch.txt", render(status))


def test_snapshot_of_a_registered_agent_without_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    config = parse_config(CONFIG.replace('[mqtt]\nhost = "localhost"\n', ""))
    outputs = Outputs(config.gpio)
    try:
        agent = Agent(config, FakeSip(), outputs, None, FakeNotifier())
        agent.started = time.monotonic() - 61.0
        agent.on_registration(RegState("registered", 200, "OK", 300, public="203.0.113.7:4000"))
        status = snapshot(agent, {}, None)
    finally:
        outputs.close()
    assert (status["ready"], status["public_address"], status["mqtt"]) == (
        True,
        "203.0.113.7:4000",
        None,
    )
    assert (status["outbox"], status["presence"], status["inputs"], status["counters"]) == (
        None,
        None,
        {},
        {},
    )
    assert_golden("status-bare.txt", render(status))


@pytest.mark.parametrize(
    ("reload", "lines"),
    [
        (None, []),
        (
            {"at": "T", "ok": False, "problems": ["sip.uri: bad", "x: y"]},
            ["last reload:   T refused: sip.uri: bad; x: y"],
        ),
        (
            {"at": "T", "ok": True, "applied": [], "needs_restart": []},
            ["last reload:   T no change"],
        ),
        (
            {"at": "T", "ok": True, "applied": ["access.allow", "x"], "needs_restart": []},
            ["last reload:   T applied access.allow, x"],
        ),
        (
            {"at": "T", "ok": True, "applied": [], "needs_restart": ["sip.listen"]},
            ["last reload:   T ", "  not applied until a restart: sip.listen"],
        ),
    ],
)
def test_the_last_reload_is_told_as_it_went(reload: object, lines: list[str]) -> None:
    status = {
        "version": "1", "device": "d", "uptime_s": 59, "config": "c",
        "registration": {"state": "direct"}, "outputs": {}, "inputs": {}, "reload": reload,
    }  # fmt: skip
    shown = render(status)
    assert shown[0] == "sipagent 1, device d, up 0m59s"
    assert shown[-len(lines) :] == lines if lines else not shown[-1].startswith("last reload")


@pytest.mark.parametrize(
    ("diagnostics", "lines"),
    [
        ({}, []),
        ({"pjproject": "2.17.0", "pjproject_outdated": False}, ["pjproject:     2.17.0"]),
        (
            {"pjproject": "", "last_error": "disk full", "last_error_at": "T"},
            ["last error:    disk full (T)"],
        ),
    ],
)
def test_diagnostics_lines(diagnostics: dict[str, object], lines: list[str]) -> None:
    status = {
        "version": "1", "device": "d", "uptime_s": 0, "config": "c",
        "registration": {"state": "direct"}, "outputs": {}, "inputs": {},
        "diagnostics": diagnostics,
    }  # fmt: skip
    shown = render(status)
    assert shown[shown.index("limited:       0") + 1 :] == lines


def test_a_status_with_the_odd_cases_reads_as_written_down() -> None:
    status = {
        "version": "1.2", "device": "shed", "uptime_s": 3600, "config": "/etc/x.toml",
        "registration": {"state": "failed", "code": 503, "retry_in": 2.5},
        "public_address": None,
        "mqtt": {"connected": False, "broker": "[::1]:1883"},
        "outputs": {},
        "inputs": {"door": {"active": True, "text": "open"}, "bell": {"text": "off"}},
        "presence": {"status": "away", "note": "", "mode": "serve"},
        "counters": {"inbox.mqtt_message.failed": 2, "a.b.c.dropped": 1},
        "reload": {"at": "T", "ok": True, "applied": [], "needs_restart": ["sip.listen", "x"]},
    }  # fmt: skip
    assert render(status) == [
        "sipagent 1.2, device shed, up 1h00m",
        "config:        /etc/x.toml",
        "registration:  failed (503 ), retry ? in 2.5s",
        "public:        unknown",
        "MQTT:          down, next [::1]:1883",
        "outputs:       none",
        "inputs:        door open, bell off",
        "presence:      away (serve)",
        "refused:       0",
        "dropped:       1 (a.b.c.dropped 1)",
        "limited:       0",
        "other:         2 (inbox.mqtt_message.failed 2)",
        "last reload:   T ",
        "  not applied until a restart: sip.listen, x",
    ]
