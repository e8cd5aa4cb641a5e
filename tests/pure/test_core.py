"""The agent's decisions on the owner thread, with the fakes of its ports (lab.fakes)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.events import MqttConnected, MqttDisconnected, MqttMessage, StopRequested
from agent.core.registration import RegState
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, message
from lab.rigs import AGENT_CONFIG


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    def build(
        on_forbidden: str = "reply", registered: bool = True
    ) -> tuple[Agent, FakeSip, FakeLink, FakePins]:
        config = parse_config(AGENT_CONFIG.format(on_forbidden=on_forbidden))
        sip, mqtt, pins = FakeSip(), FakeLink(), FakePins()
        agent = Agent(config, sip, pins, mqtt, FakeNotifier(), outbox=FakeOutbox())
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


def test_a_message_cut_short_is_never_obeyed_and_is_relayed_as_cut(parts) -> None:  # type: ignore[no-untyped-def]
    agent, sip, mqtt, pins = parts()
    msg = message(body="on gate")
    agent.on_message(replace(msg, truncated=True))
    assert pins.state["gate"] is False
    assert sip.sent[0][1].startswith("error: message cut short")
    record = json.loads(mqtt.last("sipagent/porch/message/in"))
    assert (record["truncated"], record["authorized"]) == (True, False)
    assert agent.counters.get("sip.message.truncated") == 1


def test_replies_to_strangers_stop_at_their_budget_the_owner_still_gets_his(parts) -> None:  # type: ignore[no-untyped-def]
    agent, sip, mqtt, _ = parts()
    for i in range(30):  # forged senders: each has a rate limit of its own, all share this
        agent.on_message(message(from_uri=f"<sip:eve{i}@pbx.example.org>", body="on gate"))
    assert len(sip.sent) == 10  # the burst: twice sip.limits.stranger_answers_per_s
    assert agent.counters.get("sip.reply.stranger_budget.dropped") == 20
    agent.flush()
    relayed = [p for t, p, _ in mqtt.published if t == "sipagent/porch/message/in"]
    assert len(relayed) == 30  # every one is still relayed
    agent.on_message(message(body="status"))
    assert sip.sent[-1][1].startswith("ok: outputs")


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


@pytest.mark.parametrize(
    ("allow", "result", "gate"),
    [
        # AGENT_CONFIG's mqtt.identity may command: B/command acts as it.
        ('["sip:owner@pbx.example.org", "sip:ha@PBX.example.org"]', "ok: gate on", True),
        # The default identity may, the configured one not: the configured one counts.
        ('["mqtt:local"]', "error: forbidden", False),
        ('["sip:owner@pbx.example.org"]', "error: forbidden", False),
    ],
    ids=["configured-identity-allowed", "only-the-default-allowed", "neither"],
)
def test_mqtt_command_acts_as_the_configured_identity(
    monkeypatch: pytest.MonkeyPatch, allow: str, result: str, gate: bool
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    text = AGENT_CONFIG.format(on_forbidden="reply")
    config = parse_config(text.replace('allow = ["sip:owner@pbx.example.org"]', f"allow = {allow}"))
    mqtt, pins = FakeLink(), FakePins()
    agent = Agent(config, FakeSip(), pins, mqtt, FakeNotifier(), outbox=FakeOutbox())
    mqtt.turn_ends = agent.flush
    agent.handle(MqttConnected())
    agent.handle(MqttMessage("sipagent/porch/command", b"on gate"))
    assert json.loads(mqtt.last("sipagent/porch/command/result"))["result"] == result
    assert pins.state["gate"] is gate


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


# Retained topics a connect must (re)announce for AGENT_CONFIG, written out: a restarted broker
# without persistence has lost them, and Home Assistant reads nothing else.
ANNOUNCED = {
    "sipagent/porch/output/gate/state": "OFF",
    "sipagent/porch/registration": '{"state": "registered", "code": 200, "reason": "OK", '
    '"expires": 300}',
    "homeassistant/switch/sipagent_porch/output_gate/config": None,  # None: any payload
    "homeassistant/select/sipagent_porch/presence/config": None,
    "homeassistant/sensor/sipagent_porch/registration/config": None,
    "sipagent/porch/diagnostics": None,
    "sipagent/porch/outbox": None,
}


@pytest.mark.parametrize("reconnects", [1, 2])
def test_every_reconnect_announces_discovery_and_retained_state_again(parts, reconnects) -> None:  # type: ignore[no-untyped-def]
    agent, _, mqtt, pins = parts()
    for session in range(2, 2 + reconnects):
        agent.handle(MqttDisconnected("broker restarted"))
        mqtt.session = session
        mark = len(mqtt.published)
        agent.handle(MqttConnected())
        retained = {t: p for t, p, retain in mqtt.published[mark:] if retain}
        for topic, payload in ANNOUNCED.items():
            assert topic in retained, (session, topic, sorted(retained))
            assert payload is None or retained[topic] == payload, (topic, retained[topic])
    # The state announced is the state now, not the one of the first connect.
    pins.state["gate"] = True
    agent.handle(MqttDisconnected("again"))
    mark = len(mqtt.published)
    agent.handle(MqttConnected())
    gate = [p for t, p, _ in mqtt.published[mark:] if t == "sipagent/porch/output/gate/state"]
    assert gate == ["ON"]


def test_stop_is_recorded_once(parts) -> None:  # type: ignore[no-untyped-def]
    agent, _, _, _ = parts()
    agent.handle(StopRequested("SIGTERM"))
    agent.handle(StopRequested("later"))
    assert agent.stop_reason == "SIGTERM"


def test_status_reports_the_outbox(parts) -> None:  # type: ignore[no-untyped-def]
    agent, _, _, _ = parts()
    assert "outbox 0/10000 pending, 0 dropped" in agent.status_lines()
