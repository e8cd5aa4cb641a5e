"""Hostile payloads on every MQTT topic the agent hears, with fakes around a real core.Agent.

The handlers themselves never raise (the owner loop's guard is the second line, tested in
test_containment.py), bad input gets a clear error on the result topic where there is one,
retained commands are not obeyed, and only valid commands move an output.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.events import Event, MqttConnected, MqttMessage, MqttOversize
from agent.core.mqtt_requests import OUTPUT_SET_BYTES
from agent.core.presence import check_note
from agent.core.presence_keeper import PresenceKeeper
from agent.core.topics import Topics
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, FakeSipPresence

B = "sipagent/porch"
GROUP = "sipagent/group/all/command"
CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@127.0.0.1"
presence = "serve"
[access]
allow = ["sip:owner@127.0.0.1", "mqtt:local"]
max_message_bytes = 65536
rate_burst = 1000
[mqtt]
host = "localhost"
groups = ["all"]
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.lamp]
pin = 18
pwm = true
"""
TOPICS = {
    "command": f"{B}/command",
    "group_command": GROUP,
    "output_set": f"{B}/output/lamp/set",
    "presence_set": f"{B}/presence/set",
    "presence_status_set": f"{B}/presence/status/set",
    "presence_note_set": f"{B}/presence/note/set",
    "message_send": f"{B}/message/send",
    "ha_status": "homeassistant/status",
}
PRESENCE_KINDS = ("presence_set", "presence_status_set", "presence_note_set")
# RFC 3261 media type, as agent.core.mqtt_requests allows it: no CR, no LF, nothing else.
MEDIA_TYPE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z/; =\"]+")


class Rig:
    """A fresh agent per example: one example's state must not hide the next one's."""

    def __init__(self) -> None:
        self.config = parse_config(CONFIG)
        self.sip, self.link = FakeSip(routed=False), FakeLink()
        self.presence_sip = FakeSipPresence()
        self.pins = FakePins(self.config.gpio.outputs)
        assert self.config.mqtt is not None
        keeper = PresenceKeeper(
            self.config,
            self.presence_sip,
            self.pins,
            self.pins,
            self.link,
            lambda to, body: None,
            Topics.of(self.config.mqtt),
        )
        self.agent = Agent(
            self.config, self.sip, self.pins, self.link, FakeNotifier(), keeper, FakeOutbox()
        )
        self.agent.started_sip()  # direct mode: ready to send at once; presence starts
        self.agent.handle(MqttConnected())
        self.agent.flush()

    def feed(self, event: Event) -> list[tuple[str, Any]]:
        """Handle one event, end the loop's turn; the events published meanwhile, as JSON."""
        mark = len(self.link.published)
        self.agent.handle(event)
        self.agent.flush()
        out = []
        for topic, payload, retain in self.link.published[mark:]:
            if not retain:
                out.append((topic, json.loads(payload)))
        return out


@pytest.fixture(autouse=True)
def no_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def only(events: list[tuple[str, Any]], topic: str) -> dict[str, Any]:
    found = [record for t, record in events if t == topic]
    assert len(found) == 1, events
    return found[0]


# --- the poisons that stopped the agent ----------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "answer"),
    [
        ("command", "blink lamp 1 1 " + "9" * 5000, "error: count '999"),
        ("command", "[" * 60_000, "error: unknown command '[[["),
        ("group_command", "set lamp " + "9" * 5000 + "%", "error: '999"),
        ("message_send", "[" * 100_000, "invalid JSON: nested deeper than 8 levels"),
        ("message_send", '{"to": "sip:a@b", "body": "x", "id": ' + "9" * 5000 + "}", "a number"),
        ("message_send", '{"to": "sip:a@b", "body": ' + "[" * 5000 + "}", "nested deeper"),
    ],
)
def test_poison_that_stopped_the_loop_gets_a_clear_error(
    topic: str, payload: str, answer: str
) -> None:
    rig = Rig()
    events = rig.feed(MqttMessage(TOPICS[topic], payload.encode()))
    result_topic = f"{B}/message/sent" if topic == "message_send" else f"{B}/command/result"
    record = only(events, result_topic)
    text = record.get("result") or record.get("reason")
    assert answer in text and record["ok"] is False
    assert len(json.dumps(record)) < 600  # the echo is an excerpt, not the payload
    assert rig.pins.changes == 0


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("presence_set", '{"status": ' + "9" * 5000 + "}"),
        ("presence_set", '{"status": "busy", "note": ' + "9" * 5000 + "}"),
        ("presence_set", "{" + "[" * 100_000),
        ("output_set", '{"level": ' + "9" * 5000 + "}"),
        ("output_set", "[" * 100_000),
    ],
)
def test_poison_on_the_set_topics_is_refused_and_counted(topic: str, payload: str) -> None:
    rig = Rig()
    presence_before = list(rig.presence_sip.sent)
    assert rig.feed(MqttMessage(TOPICS[topic], payload.encode())) == []
    assert rig.agent.counters.get(f"mqtt.{topic}.invalid") == 1
    assert rig.presence_sip.sent == presence_before and rig.pins.changes == 0


# --- retained commands ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("command", "on gate"),
        ("group_command", "on gate"),
        ("output_set", "ON"),
        ("presence_set", "busy retained"),
        ("message_send", '{"to": "sip:bob@127.0.0.1", "body": "again"}'),
    ],
)
def test_a_retained_command_is_not_obeyed_at_start(topic: str, payload: str) -> None:
    rig = Rig()
    presence_before = list(rig.presence_sip.sent)
    events = rig.feed(MqttMessage(TOPICS[topic], payload.encode(), retained=True))
    assert events == [] and rig.sip.sent == [] and rig.pins.changes == 0
    assert rig.presence_sip.sent == presence_before
    assert rig.agent.counters.get(f"mqtt.{topic}.retained") == 1
    # The same payload published now is obeyed.
    rig.feed(MqttMessage(TOPICS[topic], payload.encode()))
    assert rig.sip.sent or rig.pins.changes or rig.presence_sip.sent != presence_before


def test_home_assistant_s_retained_birth_still_announces() -> None:
    rig = Rig()
    mark = len(rig.link.published)
    rig.feed(MqttMessage("homeassistant/status", b"online", retained=True))
    assert any(t.startswith("homeassistant/") for t, _, _ in rig.link.published[mark:])


# --- oversize payloads ---------------------------------------------------------------------------


def test_an_oversize_command_is_answered_without_its_payload() -> None:
    rig = Rig()
    events = rig.feed(MqttOversize(TOPICS["command"], 20_000_000, 65536))
    record = only(events, f"{B}/command/result")
    assert record == {
        "command": "",
        "ok": False,
        "result": "error: payload of 20000000 bytes is longer than 65536 bytes",
    }
    group = only(rig.feed(MqttOversize(GROUP, 70_000, 65536)), f"{B}/command/result")
    assert group["group"] == "all" and group["ok"] is False
    sent = only(rig.feed(MqttOversize(TOPICS["message_send"], 99_999, 16384)), f"{B}/message/sent")
    assert sent["ok"] is False and sent["reason"].startswith("payload of 99999 bytes")
    assert rig.feed(MqttOversize(TOPICS["output_set"], 1000, OUTPUT_SET_BYTES)) == []
    assert rig.feed(MqttOversize(TOPICS["command"], 20_000_000, 65536, retained=True)) == []
    assert rig.agent.counters.get("mqtt.command.oversize") == 2
    assert rig.agent.counters.get("mqtt.output_set.oversize") == 1


# --- any payload on any topic (hypothesis) -------------------------------------------------------

POISON = st.sampled_from(
    ["9" * 5000, "[" * 100_000, "{" * 5000, "1e999", "NaN", "-0", "\ud800", "\x00", "\r\nX-I: 1"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | POISON,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["to", "body", "id", "content_type", "status", "note", "level", "command", "target", "count"]
)
OBJECTS = st.dictionaries(FIELDS, JSON_VALUES | st.just("sip:bob@127.0.0.1"), max_size=5)
WORDS = st.sampled_from(
    ["on", "off", "toggle", "pulse", "blink", "set", "presence", "busy", "status", "help",
     "gate", "lamp", "2s", "40%", "1e9", "9" * 5000, "ON", "TOGGLE", "online", "{", "["]
)  # fmt: skip
PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.lists(WORDS, max_size=6).map(lambda w: " ".join(w).encode()),
    OBJECTS.map(lambda o: json.dumps(o).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    POISON.map(lambda p: p.encode("utf-8", "surrogatepass")),
)
COMMAND_WORDS = ("on", "off", "toggle", "pulse", "blink", "set")


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(sorted(TOPICS)), payload=PAYLOADS, retained=st.booleans())
def test_any_payload_on_any_topic_is_handled_and_answered(
    kind: str, payload: bytes, retained: bool
) -> None:
    rig = Rig()
    presence_before = list(rig.presence_sip.sent)
    events = rig.feed(MqttMessage(TOPICS[kind], payload, retained))  # never raises
    if retained and kind != "ha_status":
        assert events == [] and rig.sip.sent == [] and rig.pins.changes == 0
        return
    if kind in ("command", "group_command"):
        record = only(events, f"{B}/command/result")
        assert record["result"].startswith("ok: " if record["ok"] else "error: ")
        assert len(record["command"]) <= 200
        if rig.pins.changes:
            assert record["ok"] and record["command"].split()[0].lower() in COMMAND_WORDS
    elif kind == "message_send":
        reports = [r for t, r in events if t == f"{B}/message/sent"]
        assert len(reports) + len(rig.sip.sent) == 1
        for record in reports:
            assert record["ok"] is False and "\n" not in record["reason"]
            assert len(json.dumps(record)) < 1000
        assert all(MEDIA_TYPE.fullmatch(t) for t in rig.sip.content_types)
    elif kind == "output_set" and rig.pins.changes:
        word = payload.decode("utf-8", "replace").strip().upper()
        assert word in ("ON", "OFF", "TOGGLE") or isinstance(
            json.loads(payload)["level"], int | float
        )
    for pidf in rig.presence_sip.sent[len(presence_before) :]:
        assert kind in (*PRESENCE_KINDS, "command", "group_command")
        assert check_note(pidf.note) == pidf.note or "{" in pidf.note  # a person's note is valid
    if kind not in ("command", "group_command", "output_set"):
        assert rig.pins.changes == 0
