"""What broker clients see of the bridge (agent.core.bridge) on its edges: the records it
publishes for refused and accepted requests, as the README's MQTT topic table describes them.

The oracle is that table (and "What the agent takes from broker clients"): field names, the
counters `mqtt.<kind>.<fate>`, the retained flags; the agent runs on the fakes of its ports.
"""

from __future__ import annotations

import json
import logging

import pytest

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.events import MqttConnected, MqttMessage, MqttOversize, MqttPublished
from agent.core.registration import RegState
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, message
from lab.rigs import AgentRig

CONFIG = """
[device]
id = "porch"
[sip]
name = "pbx"
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
[[sip.accounts]]
name = "public"
uri = "sip:porch@public.example.net"
registrar = "sip:public.example.net"
password = "pw2"
[access]
allow = ["sip:owner@pbx.example.org", "mqtt:local"]
[mqtt]
host = "localhost"
groups = ["all"]
{mqtt}
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.dimmer]
pin = 12
pwm = true
"""
B = "sipagent/porch"


class Rig:
    def __init__(self, mqtt: str = "", outbox: FakeOutbox | None = None) -> None:
        self.config = parse_config(CONFIG.format(mqtt=mqtt))
        self.sip, self.link, self.pins = FakeSip(), FakeLink(), FakePins(self.config.gpio.outputs)
        self.outbox = outbox or FakeOutbox()
        self.agent = Agent(
            self.config, self.sip, self.pins, self.link, FakeNotifier(), outbox=self.outbox
        )
        self.link.turn_ends = self.agent.flush
        self.agent.started_sip()
        self.agent.on_registration(RegState("registered", 200, "OK", 300))
        self.agent.on_registration(RegState("registered", 200, "OK", 300), "public")
        self.agent.handle(MqttConnected())

    def mqtt(self, topic: str, payload: bytes | str, retained: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.agent.handle(MqttMessage(f"{B}/{topic}", data, retained))
        self.agent.flush()

    def records(self, topic: str) -> list[dict[str, object]]:
        self.agent.flush()
        return [json.loads(p) for t, p, _ in self.link.published if t == f"{B}/{topic}"]

    def count(self, name: str) -> int:
        return self.agent.counters.get(name)


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    return Rig()


# -- B/message/send ---------------------------------------------------------------------------


def test_a_send_that_is_not_json_gets_one_failed_record_with_its_id_unknown(rig: Rig) -> None:
    rig.mqtt("message/send", b"not json")
    [sent] = rig.records("message/sent")
    assert set(sent) == {"id", "to", "ok", "code", "reason", "attempts"}
    assert (sent["ok"], sent["code"], sent["attempts"]) == (False, None, 0)
    assert str(sent["reason"]).startswith("invalid JSON")
    assert len(str(sent["id"])) == 36  # a new uuid: nobody gave one
    assert rig.count("mqtt.message_send.invalid") == 1
    assert rig.sip.sent == []


def test_a_refused_send_answers_with_the_requests_id_and_to(rig: Rig) -> None:
    rig.mqtt("message/send", json.dumps({"to": "sip:x@example.org", "id": "r1", "body": 5}))
    [sent] = rig.records("message/sent")
    assert (sent["id"], sent["to"], sent["ok"], sent["code"], sent["attempts"]) == (
        "r1",
        "sip:x@example.org",
        False,
        None,
        0,
    )
    assert rig.count("mqtt.message_send.invalid") == 1


def test_a_send_from_an_unknown_account_is_refused_naming_the_accounts(rig: Rig) -> None:
    request = {"to": "sip:x@example.org", "body": "hi", "id": "r2", "account": "nope"}
    rig.mqtt("message/send", json.dumps(request))
    assert rig.records("message/sent") == [
        {
            "id": "r2",
            "to": "sip:x@example.org",
            "ok": False,
            "code": None,
            "reason": "no SIP account 'nope' (accounts: pbx, public)",
            "attempts": 0,
        }
    ]
    assert rig.count("mqtt.message_send.invalid") == 1
    assert rig.sip.sent == []


@pytest.mark.parametrize("account", ["public", "pbx"])
def test_a_send_leaves_by_the_account_it_names(rig: Rig, account: str) -> None:
    request = {"to": "sip:x@example.org", "body": "hi", "id": "r3", "account": account}
    rig.mqtt("message/send", json.dumps(request))
    assert rig.sip.sent == [("sip:x@example.org", "hi", "r3")]
    assert rig.sip.accounts == [account]
    assert rig.sip.content_types == ["text/plain"]


def test_a_send_without_id_gets_a_new_one_and_the_outcome_carries_it(rig: Rig) -> None:
    rig.mqtt("message/send", json.dumps({"to": "sip:x@example.org", "body": "hi"}))
    [(_, _, token)] = rig.sip.sent
    assert token is not None and len(token) == 36
    rig.agent.on_message_status(token, "sip:x@example.org", 202, "Accepted")
    [sent] = rig.records("message/sent")
    assert (sent["id"], sent["ok"], sent["code"], sent["attempts"]) == (token, True, 202, 1)


@pytest.mark.parametrize(("code", "ok"), [(199, False), (200, True), (299, True), (300, False)])
def test_only_a_2xx_answer_is_a_sent_message(rig: Rig, code: int, ok: bool) -> None:
    rig.mqtt("message/send", json.dumps({"to": "sip:x@example.org", "body": "hi", "id": "c"}))
    rig.agent.on_message_status("c", "sip:x@example.org", code, "Whatever")
    # pjsua reports final answers only; whatever it reports is the outcome.
    assert [(r["ok"], r["code"]) for r in rig.records("message/sent")] == [(ok, code)]


def test_a_send_the_sip_stack_refuses_fails_with_its_reason(rig: Rig) -> None:
    # FakeSip raises SipError for what is no SIP URI, as the adapter does.
    rig.mqtt("message/send", json.dumps({"to": "sip:", "body": "hi", "id": "bad"}))
    [sent] = rig.records("message/sent")
    assert (sent["id"], sent["ok"], sent["code"]) == ("bad", False, None)
    assert sent["reason"] == "not a SIP URI: 'sip:' (empty host)"


def test_a_send_with_notify_goes_out_as_cpim_from_the_accounts_own_uri(rig: Rig) -> None:
    request = {"to": "sip:x@example.org", "body": "hi", "id": "n1", "notify": True}
    rig.mqtt("message/send", json.dumps({**request, "account": "public"}))
    [(to, body, token)] = rig.sip.sent
    assert (to, token) == ("sip:x@example.org", "n1")
    assert rig.sip.content_types == ["message/cpim"]
    assert "From: <sip:porch@public.example.net>" in body
    assert "To: <sip:x@example.org>" in body
    assert "\r\nContent-Type: text/plain\r\n" in body  # the inner type, as asked
    assert body.endswith("hi")


def test_an_oversize_send_answers_failed_with_the_bound(rig: Rig) -> None:
    rig.agent.handle(MqttOversize(f"{B}/message/send", 20000, 16384, False))
    [sent] = rig.records("message/sent")
    assert (sent["to"], sent["ok"], sent["code"], sent["attempts"]) == ("", False, None, 0)
    assert sent["reason"] == "payload of 20000 bytes is longer than 16384 bytes"
    assert len(str(sent["id"])) == 36
    assert rig.count("mqtt.message_send.oversize") == 1


# -- B/command and the group commands -----------------------------------------------------------


def test_a_command_result_echoes_the_command(rig: Rig) -> None:
    rig.mqtt("command", "on gate")
    assert rig.records("command/result") == [
        {"command": "on gate", "ok": True, "result": "ok: gate on"}
    ]
    assert rig.pins.state["gate"] is True


def test_a_group_command_is_carried_out_and_its_result_names_the_group(rig: Rig) -> None:
    rig.agent.handle(MqttMessage("sipagent/group/all/command", b"on gate", False))
    assert rig.records("command/result") == [
        {"command": "on gate", "ok": True, "result": "ok: gate on", "group": "all"}
    ]


def test_an_oversize_group_command_is_answered_with_its_group(rig: Rig) -> None:
    rig.agent.handle(MqttOversize("sipagent/group/all/command", 5000, 1000, False))
    assert rig.records("command/result") == [
        {
            "command": "",
            "ok": False,
            "result": "error: payload of 5000 bytes is longer than 1000 bytes",
            "group": "all",
        }
    ]
    assert rig.count("mqtt.group_command.oversize") == 1


def test_a_retained_oversize_command_is_counted_and_not_answered(rig: Rig) -> None:
    rig.agent.handle(MqttOversize(f"{B}/command", 5000, 1000, True))
    assert rig.records("command/result") == []
    assert rig.count("mqtt.command.oversize") == 1


def test_an_oversize_payload_on_an_unknown_topic_is_counted_as_unknown(rig: Rig) -> None:
    rig.agent.handle(MqttOversize("elsewhere/x", 5000, 1000, False))
    assert rig.count("mqtt.unknown.oversize") == 1


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("command", "command"),
        ("message/send", "message_send"),
        ("output/gate/set", "output_set"),
        ("presence/set", "presence_set"),
    ],
)
def test_a_retained_command_is_counted_and_not_obeyed(rig: Rig, topic: str, kind: str) -> None:
    payload = (
        json.dumps({"to": "sip:x@example.org", "body": "hi"}) if kind == "message_send" else "ON"
    )
    rig.mqtt(topic, payload if kind != "command" else "on gate", retained=True)
    assert rig.count(f"mqtt.{kind}.retained") == 1
    assert rig.pins.state["gate"] is False
    assert rig.sip.sent == []
    assert rig.records("command/result") == []


def test_a_command_the_identity_may_not_give_is_answered_forbidden(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    rig = Rig(mqtt='identity = "sip:stranger@example.org"')
    rig.mqtt("command", "on gate")
    assert rig.records("command/result") == [
        {"command": "on gate", "ok": False, "result": "error: forbidden"}
    ]
    assert rig.pins.state["gate"] is False


def test_a_refusal_flood_logs_one_line_then_a_count(rig: Rig, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="agent.core.bridge"):
        for _ in range(3):
            rig.mqtt("output/nope/set", "ON")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["MQTT set for unknown output 'nope'"]
    assert rig.count("mqtt.output_set.invalid") == 3


# -- B/output/<name>/set ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payloads", "on"),
    [(["ON"], True), ([" on "], True), (["ON", "OFF"], False), (["TOGGLE"], True),
     (["ON", "toggle"], False)],
)  # fmt: skip
def test_output_set_words(rig: Rig, payloads: list[str], on: bool) -> None:
    for payload in payloads:
        rig.mqtt("output/gate/set", payload)
    assert rig.pins.state["gate"] is on
    assert rig.count("mqtt.output_set.invalid") == 0


@pytest.mark.parametrize(
    ("payload", "level"),
    [('{"level": 40}', 0.4), ('{"level": 12.5}', 0.125), ('{"level": 0}', 0.0)],
)
def test_output_set_a_json_level_on_a_pwm_output(rig: Rig, payload: str, level: float) -> None:
    rig.mqtt("output/dimmer/set", payload)
    assert rig.pins.level("dimmer") == pytest.approx(level)
    assert rig.count("mqtt.output_set.invalid") == 0


@pytest.mark.parametrize(
    "payload", ["maybe", '{"level": true}', '{"level": "40"}', '{"LEVEL": 40}', "[40]", "{"]
)
def test_output_set_refuses_what_is_no_word_and_no_level(rig: Rig, payload: str) -> None:
    rig.mqtt("output/dimmer/set", payload)
    assert rig.pins.level("dimmer") == 0.0
    assert rig.count("mqtt.output_set.invalid") == 1


def test_output_set_a_level_on_an_output_without_pwm_is_refused_like_the_command(
    rig: Rig, caplog
) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.INFO, logger="agent.core.bridge"):
        rig.mqtt("output/gate/set", '{"level": 40}')
    assert rig.pins.state["gate"] is False
    [line] = [r for r in caplog.records if r.getMessage().startswith("MQTT set: ")]
    assert line.levelno == logging.WARNING
    assert "error" in line.getMessage()


def test_output_set_for_an_unknown_output_changes_nothing(rig: Rig) -> None:
    rig.mqtt("output/nope/set", "ON")
    assert rig.count("mqtt.output_set.invalid") == 1
    assert not any(rig.pins.state.values())


# -- presence, Home Assistant, discovery --------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("presence/set", "presence_set"),
        ("presence/status/set", "presence_status_set"),
    ],
)
def test_a_presence_the_keeper_refuses_is_counted(topic: str, kind: str) -> None:
    rig = AgentRig()
    rig.agent.handle(MqttMessage(f"{B}/{topic}", b"sleepy", False))
    assert rig.agent.counters.get(f"mqtt.{kind}.invalid") == 1


def test_presence_status_and_note_are_set_apart() -> None:
    rig = AgentRig()
    rig.agent.handle(MqttMessage(f"{B}/presence/set", b"away gone fishing", False))
    rig.agent.handle(MqttMessage(f"{B}/presence/status/set", b"busy", False))
    assert json.loads(rig.mqtt.last_retained(f"{B}/presence/state")[0]) == {
        "status": "busy",
        "note": "gone fishing",
    }
    rig.agent.handle(MqttMessage(f"{B}/presence/note/set", b"back soon", False))
    assert json.loads(rig.mqtt.last_retained(f"{B}/presence/state")[0]) == {
        "status": "busy",
        "note": "back soon",
    }
    assert not [k for k in rig.agent.counters.snapshot() if k.endswith(".invalid")]


def test_home_assistant_online_announces_again_and_other_words_do_not(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    rig = Rig(mqtt='discovery_prefix = "homeassistant"')
    configs = [t for t, _, r in rig.link.published if t.endswith("/config") and r]
    assert configs  # announced on connect, retained
    before = len(rig.link.published)
    rig.agent.handle(MqttMessage("homeassistant/status", b"offline", False))
    assert len(rig.link.published) == before
    rig.agent.handle(MqttMessage("homeassistant/status", b" online\n", False))
    again = [t for t, _, r in rig.link.published[before:] if t.endswith("/config") and r]
    assert sorted(again) == sorted(configs)


def test_an_entity_gone_from_the_config_gets_an_empty_retained_config(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    outbox = FakeOutbox()
    gone = "homeassistant/switch/sipagent_porch/old/config"
    outbox.set_announced({gone})
    rig = Rig(mqtt='discovery_prefix = "homeassistant"', outbox=outbox)
    assert (gone, "", True) in rig.link.published
    assert gone not in outbox.announced()
    assert outbox.announced()  # what was announced now


def test_the_outbox_status_is_retained_json(rig: Rig) -> None:
    payload, retained = rig.link.last_retained(f"{B}/outbox")
    status = json.loads(payload)
    assert retained is True
    assert status["pending"] == 0 and status["durable"] is True


def test_a_published_event_leaves_the_outbox_once_acknowledged(rig: Rig) -> None:
    rig.mqtt("command", "status")
    assert rig.outbox.pending == 1
    mid = next(m for m, t, _ in rig.link.events if t == f"{B}/command/result")
    rig.agent.handle(MqttPublished(mid))
    rig.agent.flush()
    assert rig.outbox.pending == 0


def test_a_send_that_waited_for_registration_leaves_by_its_account(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    config = parse_config(CONFIG.format(mqtt=""))
    sip, link = FakeSip(), FakeLink()
    agent = Agent(
        config, sip, FakePins(config.gpio.outputs), link, FakeNotifier(), outbox=FakeOutbox()
    )
    agent.started_sip()
    agent.handle(MqttConnected())
    request = {"to": "sip:x@example.org", "body": "hi", "id": "w", "account": "public"}
    agent.handle(MqttMessage(f"{B}/message/send", json.dumps(request).encode(), False))
    agent.flush()
    assert sip.sent == []  # nothing registered yet: it waits
    agent.on_registration(RegState("registered", 200, "OK", 300), "public")
    agent.flush()
    assert (sip.sent, sip.accounts) == ([("sip:x@example.org", "hi", "w")], ["public"])


def test_a_message_the_full_outbox_refuses_is_still_answered(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    outbox = FakeOutbox(capacity=1, when_full="refuse")
    rig = Rig(outbox=outbox)
    rig.outbox.add("x", b"filler")
    rig.agent.on_message(message(body="on gate", account="pbx"))
    assert rig.pins.state["gate"] is True
    assert rig.sip.sent[-1][1] == "ok: gate on"
    assert outbox.refused >= 1


def test_in_silent_mode_mqtt_still_gets_an_answer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    rig = Rig(mqtt='identity = "sip:stranger@example.org"')
    silent = parse_config(
        CONFIG.format(mqtt='identity = "sip:stranger@example.org"').replace(
            "[access]\n", '[access]\non_forbidden = "silent"\n'
        )
    )
    rig.agent.reconfigure(silent)
    rig.mqtt("command", "on gate")
    assert rig.records("command/result")[-1] == {
        "command": "on gate",
        "ok": False,
        "result": "error: forbidden",
    }


def test_a_transient_failure_is_retried_not_reported(rig: Rig) -> None:
    rig.mqtt("message/send", json.dumps({"to": "sip:x@example.org", "body": "hi", "id": "t"}))
    rig.agent.on_message_status("t", "sip:x@example.org", 503, "Service Unavailable")
    assert rig.records("message/sent") == []  # mqtt.send_retries (default 2) to go
