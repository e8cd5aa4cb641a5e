"""No message, MQTT command or call raises into the owner loop (hypothesis, with fakes)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core import CONFIG, FakeMqtt, FakePins, FakeSip
from test_messages import message

from agent.config import parse_config
from agent.core import Agent
from agent.events import MqttConnected, MqttMessage
from agent.outbox import Outbox
from agent.service import Notifier

SENDERS = st.sampled_from(
    [
        '"Owner" <sip:owner@pbx.example.org>',
        "sip:eve@pbx.example.org",
        "<sip:owner@PBX.example.org:5060;transport=tcp>",
        "not a uri",
        "",
    ]
)
WORDS = st.sampled_from(["on", "off", "pulse", "blink", "set", "gate", "2s", "50%", "help", "ok:"])
BODIES = st.one_of(st.text(max_size=200), st.lists(WORDS, max_size=5).map(" ".join))
TYPES = st.sampled_from(["text/plain", "application/json", "text/plain; charset=utf-8", "", "x/y"])


@pytest.fixture(autouse=True)
def no_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def new_agent() -> Agent:
    """A fresh agent per example: one example's rate limit must not hide the next one's."""
    config = parse_config(CONFIG.format(on_forbidden="reply"))
    outbox = Outbox(":memory:")  # the durable outbox's logic, without a file per example
    agent = Agent(config, FakeSip(), FakePins(), FakeMqtt(), Notifier(), outbox=outbox)
    agent.handle(MqttConnected())
    return agent


SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(sender=SENDERS, body=BODIES, content_type=TYPES)
def test_any_message_is_relayed_and_answered_at_most_once(
    sender: str, body: str, content_type: str
) -> None:
    agent = new_agent()
    assert isinstance(agent.sip, FakeSip) and isinstance(agent.mqtt, FakeMqtt)
    sent, published = len(agent.sip.sent), len(agent.mqtt.published)
    agent.on_message(message(from_uri=sender, body=body, content_type=content_type))
    agent.flush()  # the end of the owner loop's turn: events go out
    assert len(agent.sip.sent) - sent <= 1
    relayed = [p for t, p, _ in agent.mqtt.published[published:] if t.endswith("/message/in")]
    assert len(relayed) == 1 and json.loads(relayed[0])["body"] == body


@SETTINGS
@given(payload=st.binary(max_size=200), topic=st.sampled_from(["command", "output/gate/set"]))
def test_any_mqtt_payload_is_handled(payload: bytes, topic: str) -> None:
    agent = new_agent()
    agent.handle(MqttMessage(f"sipagent/porch/{topic}", payload))


@SETTINGS
@given(caller=st.one_of(SENDERS, st.text(max_size=40)))
def test_any_caller_is_rejected(caller: str) -> None:
    agent = new_agent()
    assert agent.on_incoming_call(caller, "192.0.2.1:5060") == 603
