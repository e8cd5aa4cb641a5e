"""The device as the owner's commands see it (agent.core.device): the `status` reply's lines,
PWM levels and running pulses in it, the uptime, `presence` without a presence keeper, and
every output change announced on `B/output/<name>/state`.

Oracles: the README's command table (`status`: outputs, registration, MQTT, ..., uptime) and
MQTT topic table (`ON`/`OFF`, `{"state", "level"}` for PWM), with the agent on the fakes.
"""

from __future__ import annotations

import json
import time

import pytest

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.events import MqttConnected
from agent.core.registration import RegState
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, message

CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
[access]
allow = ["sip:owner@pbx.example.org"]
{mqtt}
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.dimmer]
pin = 12
pwm = true
"""


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def build(mqtt: bool) -> tuple[Agent, FakeSip, FakePins, FakeLink | None]:
    config = parse_config(CONFIG.format(mqtt='[mqtt]\nhost = "localhost"' if mqtt else ""))
    sip, pins = FakeSip(), FakePins(config.gpio.outputs)
    link = FakeLink() if mqtt else None
    agent = Agent(config, sip, pins, link, FakeNotifier(), outbox=FakeOutbox() if mqtt else None)
    pins.set_listener(agent.on_output_changed)  # as agent.loop wires the GPIO adapter
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    if link is not None:
        link.turn_ends = agent.flush
        agent.handle(MqttConnected())
    return agent, sip, pins, link


def ask(agent: Agent, sip: FakeSip, body: str) -> str:
    agent.on_message(message(body=body))
    return sip.sent[-1][1]


def test_status_without_mqtt_lists_outputs_registration_and_uptime() -> None:
    agent, sip, _, _ = build(mqtt=False)
    agent.started = time.monotonic() - 65.2
    lines = ask(agent, sip, "status").removeprefix("ok: ").split("; ")
    assert lines[0] == "outputs: gate off, dimmer 0%"
    assert lines[1:] == ["SIP registered (200 OK)", "MQTT off", "uptime 1m05s"]


def test_status_shows_levels_running_pulses_and_hours_of_uptime() -> None:
    agent, sip, _, _ = build(mqtt=True)
    ask(agent, sip, "set dimmer 37.5%")
    ask(agent, sip, "pulse gate 2s")
    agent.started = time.monotonic() - (3600 + 2 * 60 + 5.2)
    lines = ask(agent, sip, "status").removeprefix("ok: ").split("; ")
    assert lines[0] == "outputs: gate on (pulse 2s), dimmer 37.5%"
    assert lines[1:3] == ["SIP registered (200 OK)", "MQTT connected to broker:1883"]
    assert lines[3].startswith("outbox ")  # the bridge's line, before the uptime
    assert lines[-1] == "uptime 1h02m"


def test_presence_without_a_keeper_is_an_error_not_a_crash() -> None:
    agent, sip, _, _ = build(mqtt=False)
    assert ask(agent, sip, "presence busy") == "error: presence is not available"


def test_every_output_change_is_announced_retained() -> None:
    agent, sip, _, link = build(mqtt=True)
    assert link is not None
    ask(agent, sip, "on gate")
    assert link.last_retained("sipagent/porch/output/gate/state") == ("ON", True)
    ask(agent, sip, "set dimmer 40%")
    payload, retained = link.last_retained("sipagent/porch/output/dimmer/state")
    assert retained is True
    assert json.loads(payload) == {"state": "ON", "level": 40.0}
    ask(agent, sip, "off gate")
    assert link.last_retained("sipagent/porch/output/gate/state") == ("OFF", True)


def test_blink_and_levels_reach_the_pins() -> None:
    agent, sip, pins, _ = build(mqtt=False)
    assert ask(agent, sip, "blink gate 1s 1s 3").startswith("ok: ")
    assert pins.calls == [("blink", "gate", 1.0, 1.0, 3)]
    ask(agent, sip, "set dimmer 25%")
    assert pins.level("dimmer") == pytest.approx(0.25)


def test_status_without_outputs_and_a_level_to_a_tenth() -> None:
    sip = FakeSip()
    config = parse_config(CONFIG.format(mqtt="").split("[gpio]")[0])
    agent = Agent(config, sip, FakePins(()), None, FakeNotifier())
    agent.started_sip()
    assert ask(agent, sip, "status").startswith("ok: outputs: none; ")
    agent2, sip2, _, _ = build(mqtt=False)
    ask(agent2, sip2, "set dimmer 12.34%")
    assert ask(agent2, sip2, "status").startswith("ok: outputs: gate off, dimmer 12.3%; ")
