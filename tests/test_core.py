"""The agent's decisions on the owner thread, with recording fakes for SIP, MQTT and pins."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_messages import message

from agent.config import OutputConfig, parse_config
from agent.core import Agent
from agent.events import MqttConnected, MqttMessage, StopRequested
from agent.messages import IncomingMessage
from agent.outbox import Outbox, OutboxError
from agent.service import Notifier
from agent.sip import RegState
from agent.sip_send import SipError

CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
[access]
allow = ["sip:owner@pbx.example.org"]
on_forbidden = "{on_forbidden}"
[mqtt]
host = "localhost"
identity = "sip:ha@pbx.example.org"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""


class FakeSip:
    routed = True
    defers_answers = False  # as pjsua 2.15: the 200 went out before the agent saw it

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str | None]] = []
        self.answers: list[tuple[str, int]] = []  # (message id, code)

    def answer(self, msg: IncomingMessage, code: int, reason: str) -> None:
        self.answers.append((msg.id, code))

    def send_message(
        self, to: str, body: str, content_type: str = "text/plain", token: str | None = None
    ) -> None:
        if not to.startswith("sip"):
            raise SipError(f"not a SIP URI: {to!r}")
        self.sent.append((to, body, token))


class FakeMqtt:
    connected = True
    session = 1
    broker = "broker:1883"

    def __init__(self) -> None:
        self.published: list[tuple[str, str, bool]] = []
        self.turn_ends: Callable[[], None] = lambda: None

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        text = payload.decode() if isinstance(payload, bytes) else payload
        self.published.append((topic, text, retain))

    def publish_event(
        self, topic: str, payload: bytes | str, *, retain: bool = False, session: int | None = None
    ) -> int | None:
        self.publish(topic, payload, retain=retain)
        return len(self.published)

    def last(self, topic: str) -> str:
        self.turn_ends()  # as the owner loop does after each turn: events go out
        return [p for t, p, _ in self.published if t == topic][-1]


class FakePins:
    def __init__(self) -> None:
        self.state = {"gate": False}
        self.config = parse_config(CONFIG.format(on_forbidden="reply")).gpio

    def output_config(self, name: str) -> OutputConfig:
        return self.config.outputs[0]

    def pulse(self, name: str, seconds: float) -> None:
        self.state[name] = True

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None:
        self.state[name] = True

    def set_level(self, name: str, level: float) -> None:
        self.state[name] = level > 0

    def output_names(self) -> list[str]:
        return list(self.state)

    def output_is_on(self, name: str) -> bool:
        return self.state[name]

    def set_output(self, name: str, on: bool) -> None:
        self.state[name] = on

    def state_payload(self, name: str) -> str:
        return "ON" if self.state[name] else "OFF"

    def activity(self, name: str) -> str | None:
        return None


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    def build(
        on_forbidden: str = "reply", registered: bool = True
    ) -> tuple[Agent, FakeSip, FakeMqtt, FakePins]:
        config = parse_config(CONFIG.format(on_forbidden=on_forbidden))
        sip, mqtt, pins = FakeSip(), FakeMqtt(), FakePins()
        outbox = Outbox(str(tmp_path / f"outbox-{on_forbidden}.db"))
        agent = Agent(config, sip, pins, mqtt, Notifier(), outbox=outbox)
        mqtt.turn_ends = agent.flush
        agent.started_sip()
        if registered:
            agent.on_registration(RegState("registered", 200, "OK", 300))
        agent.handle(MqttConnected())
        return agent, sip, mqtt, pins

    return build


def test_owner_command_changes_the_pin_replies_and_is_relayed(parts) -> None:  # type: ignore[no-untyped-def]
    agent, sip, mqtt, pins = parts()
    agent.on_message(message(body="on gate"))
    assert pins.state["gate"] is True
    assert sip.sent == [("sip:owner@pbx.example.org", "ok: gate on", None)]
    record = json.loads(mqtt.last("sipagent/porch/message/in"))
    assert record["authorized"] is True
    assert record["command"] == {"name": "on", "target": "gate", "result": "ok: gate on"}


@pytest.mark.parametrize(("mode", "replies"), [("reply", ["error: forbidden"]), ("silent", [])])
def test_stranger_changes_nothing(parts, mode: str, replies: list[str]) -> None:  # type: ignore[no-untyped-def]
    agent, sip, mqtt, pins = parts(mode)
    agent.on_message(message(from_uri="<sip:eve@pbx.example.org>", body="on gate"))
    assert pins.state["gate"] is False
    assert [body for _, body, _ in sip.sent] == replies
    record = json.loads(mqtt.last("sipagent/porch/message/in"))
    assert record["authorized"] is False
    assert record["command"]["name"] == "on"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("ok: done", "text/plain"), ("error: forbidden", "text/plain"), ("<xml/>", "text/xml")],
)
def test_replies_and_other_content_are_relayed_not_answered(parts, body, content_type) -> None:  # type: ignore[no-untyped-def]
    agent, sip, mqtt, _ = parts()
    agent.on_message(message(body=body, content_type=content_type))
    assert sip.sent == []
    assert json.loads(mqtt.last("sipagent/porch/message/in"))["command"] is None


def test_bad_command_from_owner_gets_an_error_reply(parts) -> None:  # type: ignore[no-untyped-def]
    agent, sip, _, _ = parts()
    agent.on_message(message(body="fly gate"))
    assert sip.sent[0][1].startswith("error: unknown command 'fly'")


def test_mqtt_send_goes_out_and_its_outcome_comes_back(parts) -> None:  # type: ignore[no-untyped-def]
    agent, sip, mqtt, _ = parts()
    request = {"to": "sip:owner@pbx.example.org", "body": "hi", "id": "x1"}
    agent.handle(MqttMessage("sipagent/porch/message/send", json.dumps(request).encode()))
    assert sip.sent == [("sip:owner@pbx.example.org", "hi", "x1")]
    agent.on_message_status("x1", "sip:owner@pbx.example.org", 200, "OK")
    outcome = json.loads(mqtt.last("sipagent/porch/message/sent"))
    assert outcome == {
        "id": "x1",
        "to": "sip:owner@pbx.example.org",
        "ok": True,
        "code": 200,
        "reason": "OK",
        "attempts": 1,
    }


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "Expecting"),
        (b"[1]", "JSON object"),
        (b'{"to": "sip:a@b"}', '"to" and "body" must be strings'),
        (b'{"to": "a@b", "body": "x"}', "not a SIP URI"),
    ],
)
def test_mqtt_send_refusals_are_reported(parts, payload: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    agent, sip, mqtt, _ = parts()
    agent.handle(MqttMessage("sipagent/porch/message/send", payload))
    outcome = json.loads(mqtt.last("sipagent/porch/message/sent"))
    assert outcome["ok"] is False and reason in outcome["reason"]
    assert sip.sent == []


def test_mqtt_command_uses_the_configured_identity(parts) -> None:  # type: ignore[no-untyped-def]
    agent, _, mqtt, pins = parts()
    agent.handle(MqttMessage("sipagent/porch/command", b"on gate"))
    assert json.loads(mqtt.last("sipagent/porch/command/result"))["result"] == "error: forbidden"
    assert pins.state["gate"] is False


def test_output_set_topic(parts) -> None:  # type: ignore[no-untyped-def]
    agent, _, _, pins = parts()
    agent.handle(MqttMessage("sipagent/porch/output/gate/set", b"ON"))
    assert pins.state["gate"] is True
    agent.handle(MqttMessage("sipagent/porch/output/gate/set", b"toggle"))
    assert pins.state["gate"] is False
    agent.handle(MqttMessage("sipagent/porch/output/gate/set", b"maybe"))
    agent.handle(MqttMessage("sipagent/porch/output/nope/set", b"ON"))
    assert pins.state == {"gate": False}


def test_registration_makes_ready_once_and_is_published(parts) -> None:  # type: ignore[no-untyped-def]
    agent, _, mqtt, _ = parts(registered=False)
    assert agent.ready is False
    agent.on_registration(RegState("failed", 401, "Unauthorized", 0))
    assert agent.ready is False
    assert json.loads(mqtt.last("sipagent/porch/registration"))["state"] == "failed"
    agent.on_registration(RegState("registered", 200, "OK", 300))
    assert agent.ready is True
    assert mqtt.published[-1] == (
        "sipagent/porch/registration",
        '{"state": "registered", "code": 200, "reason": "OK", "expires": 300}',
        True,
    )


def test_reconnect_announces_retained_state_and_stop_is_recorded(parts) -> None:  # type: ignore[no-untyped-def]
    agent, _, mqtt, _ = parts()
    agent.handle(MqttConnected())
    assert ("sipagent/porch/output/gate/state", "OFF", True) in mqtt.published
    agent.handle(StopRequested("SIGTERM"))
    agent.handle(StopRequested("later"))
    assert agent.stop_reason == "SIGTERM"


def test_status_reports_the_outbox(parts) -> None:  # type: ignore[no-untyped-def]
    agent, _, _, _ = parts()
    assert "outbox 0/10000 pending, 0 dropped" in agent.status_lines()


def test_an_outbox_that_cannot_store_does_not_silence_the_relay(parts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    agent, _, mqtt, pins = parts()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OutboxError("cannot store into the outbox 'x': database or disk is full")

    monkeypatch.setattr(agent.bridge.delivery.outbox, "add", disk_full)
    agent.on_message(message(body="on gate"))
    assert pins.state["gate"] is True
    assert json.loads(mqtt.last("sipagent/porch/message/in"))["command"]["result"] == "ok: gate on"
