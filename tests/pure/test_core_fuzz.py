"""No message, MQTT command or call raises into the owner loop (hypothesis, with fakes)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.events import MqttConnected, MqttMessage
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, message
from lab.rigs import AGENT_CONFIG

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


def new_agent() -> Agent:
    """A fresh agent per example: one example's rate limit must not hide the next one's."""
    config = parse_config(AGENT_CONFIG.format(on_forbidden="reply"))
    agent = Agent(config, FakeSip(), FakePins(), FakeLink(), FakeNotifier(), outbox=FakeOutbox())
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
    assert isinstance(agent.sip, FakeSip) and isinstance(agent.mqtt, FakeLink)
    sent, published = len(agent.sip.sent), len(agent.mqtt.published)
    agent.on_message(message(from_uri=sender, body=body, content_type=content_type))
    agent.flush()  # the end of the owner loop's turn: events go out
    assert len(agent.sip.sent) - sent <= 1
    relayed = [p for t, p, _ in agent.mqtt.published[published:] if t.endswith("/message/in")]
    assert len(relayed) == 1 and json.loads(relayed[0])["body"] == body


WORDS_ON_SET = st.sampled_from([b"ON", b"off", b" toggle ", b"TOGGLE", b"On\n", b"ONN", b"1"])


@SETTINGS
@given(payload=st.one_of(st.binary(max_size=200), WORDS_ON_SET))
def test_any_command_payload_gets_one_result_and_moves_nothing_for_an_identity_not_allowed(
    payload: bytes,
) -> None:
    # AGENT_CONFIG's mqtt.identity (sip:ha@...) is not in access.allow.
    agent = new_agent()
    assert isinstance(agent.mqtt, FakeLink) and isinstance(agent.outputs, FakePins)
    mark = len(agent.mqtt.published)
    agent.handle(MqttMessage("sipagent/porch/command", payload))
    agent.flush()
    results = [p for t, p, _ in agent.mqtt.published[mark:] if t.endswith("/command/result")]
    assert len(results) == 1
    result = json.loads(results[0])
    assert result["ok"] is False and result["result"].startswith("error: ")
    assert agent.outputs.state == {"gate": False}


@SETTINGS
@given(payload=st.one_of(st.binary(max_size=200), WORDS_ON_SET))
def test_any_set_payload_moves_the_output_only_as_on_off_or_toggle(payload: bytes) -> None:
    agent = new_agent()
    assert isinstance(agent.outputs, FakePins)
    agent.handle(MqttMessage("sipagent/porch/output/gate/set", payload))
    # The README's words, any case, surrounding white space ignored; the gate was off.
    word = payload.decode("utf-8", errors="replace").strip().upper()
    assert agent.outputs.state == {"gate": word in ("ON", "TOGGLE")}


@SETTINGS
@given(caller=st.one_of(SENDERS, st.text(max_size=40)))
def test_any_caller_is_rejected(caller: str) -> None:
    agent = new_agent()
    assert agent.on_incoming_call(caller, "192.0.2.1:5060") == 603
