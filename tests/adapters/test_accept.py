"""When a received MESSAGE is answered, and what is done with it (agent.core.intake), with the
real outbox (agent.adapters.outbox) and its disk troubles.

With deferred answers (pjproject 2.16+) the agent sends 200 only once the message is stored
(or, without MQTT, handed to the dispatcher), 500 when it cannot be stored; a retransmission
is answered again but obeyed once, with or without an outbox.
"""

from __future__ import annotations

import json

import pytest

from agent.adapters.outbox.store import Outbox
from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.events import MqttConnected
from agent.core.messages import IncomingMessage
from lab.fakes import FakeLink, FakeNotifier, FakePins, FakeSip, message
from lab.rigs import AGENT_CONFIG as CONFIG

# The same device without MQTT: no bridge, no outbox.
NO_MQTT = CONFIG.format(on_forbidden="reply").split("[mqtt]")[0] + (
    '[gpio]\npin_factory = "mock"\n[gpio.outputs.gate]\npin = 17\n'
)
KEY = "call-1@host|1 MESSAGE|tag1"


class OrderedSip(FakeSip):
    """Records answers and sent MESSAGEs in one list, in the order they happen."""

    def __init__(self, defers: bool) -> None:
        super().__init__(defers_answers=defers)
        self.events: list[tuple[str, object]] = []

    def answer(self, msg: IncomingMessage, code: int, reason: str) -> None:
        super().answer(msg, code, reason)
        self.events.append(("answer", code))

    def send_message(
        self,
        to: str,
        body: str,
        content_type: str = "text/plain",
        token: str | None = None,
        account: str | None = None,
    ) -> None:
        super().send_message(to, body, content_type, token, account)
        self.events.append(("send", body))


@pytest.fixture(autouse=True)
def no_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def agent_with(defers: bool, mqtt: bool = True, outbox: Outbox | None = None):  # type: ignore[no-untyped-def]
    sip, pins = OrderedSip(defers), FakePins()
    if not mqtt:
        config = parse_config(NO_MQTT)
        return Agent(config, sip, pins, None, FakeNotifier()), sip, None, pins
    config = parse_config(CONFIG.format(on_forbidden="reply"))
    link = FakeLink()
    agent = Agent(config, sip, pins, link, FakeNotifier(), outbox=outbox or Outbox(":memory:"))
    link.turn_ends = agent.flush
    agent.handle(MqttConnected())
    return agent, sip, link, pins


def test_deferred_the_200_goes_out_once_stored_and_before_the_commands_reply():
    agent, sip, mqtt, pins = agent_with(defers=True)
    agent.on_message(message(body="on gate"))
    assert sip.events == [("answer", 200), ("send", "ok: gate on")]
    assert pins.state["gate"] is True
    assert json.loads(mqtt.last("sipagent/porch/message/in"))["body"] == "on gate"


def unusable_outbox(tmp_path) -> Outbox:  # type: ignore[no-untyped-def]
    """An outbox whose disk takes nothing (the outbox keeps events in memory instead)."""
    (tmp_path / "a-file").write_text("")  # the state directory is a file
    return Outbox(str(tmp_path / "a-file" / "outbox.db"))


def test_deferred_a_message_that_cannot_be_stored_gets_500_and_nothing_happens(tmp_path):
    outbox = unusable_outbox(tmp_path)
    agent, sip, mqtt, pins = agent_with(defers=True, outbox=outbox)
    agent.on_message(message(body="on gate"))
    assert sip.events == [("answer", 500)]
    assert pins.state["gate"] is False  # the sender tries again: acting now would act twice
    mqtt.turn_ends()
    assert not [t for t, _, _ in mqtt.published if t.endswith("message/in")]
    assert outbox.pending == 0  # not held in memory either: the sender has it


def test_deferred_a_full_outbox_that_refuses_gets_500_too(tmp_path):
    outbox = Outbox(str(tmp_path / "o.db"), capacity=1, when_full="refuse")
    agent, sip, mqtt, pins = agent_with(defers=True, outbox=outbox)
    mqtt.connected = False  # the broker is away: what is stored stays
    agent.on_message(message(body="ok: first"))  # fills the outbox
    assert outbox.pending == outbox.capacity
    agent.on_message(message(body="on gate"))
    assert [e for e in sip.events if e[0] == "answer"] == [("answer", 200), ("answer", 500)]
    assert pins.state["gate"] is False


def test_deferred_a_retransmission_of_one_refused_is_weighed_again_never_taken_as_kept(
    tmp_path,
):
    outbox = Outbox(str(tmp_path / "o.db"), capacity=1, when_full="refuse")
    agent, sip, mqtt, pins = agent_with(defers=True, outbox=outbox)
    mqtt.connected = False
    agent.on_message(message(body="ok: first"))
    refused = IncomingMessage.new(**_fields("toggle gate"), request_key=KEY)
    again = IncomingMessage.new(**_fields("toggle gate"), request_key=KEY)
    agent.on_message(refused)
    agent.on_message(again)  # its transaction had gone (a short Timer J): a new request
    answers = [code for kind, code in sip.events if kind == "answer"]
    assert answers == [200, 500, 500]  # a 200 here would tell the sender it was kept
    assert pins.state["gate"] is False


def test_without_deferred_answers_an_unstorable_message_is_still_obeyed(tmp_path):
    # pjsua 2.15 answered 200 already: kept in memory until the disk takes it, and obeyed.
    agent, _, _, pins = agent_with(defers=False, outbox=unusable_outbox(tmp_path))
    agent.on_message(message(body="on gate"))
    assert pins.state["gate"] is True


@pytest.mark.parametrize("mqtt", [True, False], ids=["outbox", "no-mqtt"])
def test_a_late_retransmission_is_answered_again_and_obeyed_once(mqtt):
    agent, sip, _, pins = agent_with(defers=True, mqtt=mqtt)
    first = IncomingMessage.new(**_fields("toggle gate"), request_key=KEY)
    again = IncomingMessage.new(**_fields("toggle gate"), request_key=KEY)
    agent.on_message(first)
    agent.on_message(again)  # Timer J was short: pjsip took it for a new request
    assert pins.state["gate"] is True  # toggled once
    assert [e for e in sip.events if e[0] == "answer"] == [("answer", 200)] * 2
    assert [e for e in sip.events if e[0] == "send"] == [("send", "ok: gate on")]


def test_without_mqtt_the_200_goes_out_as_the_message_is_handed_to_the_dispatcher():
    agent, sip, _, pins = agent_with(defers=True, mqtt=False)
    agent.on_message(message(body="on gate"))
    assert sip.events == [("answer", 200), ("send", "ok: gate on")]
    assert pins.state["gate"] is True


def _fields(body: str) -> dict[str, str]:
    return {
        "from_uri": "<sip:owner@pbx.example.org>;tag=tag1",
        "to_uri": "<sip:porch@pbx.example.org>",
        "contact": "",
        "body": body,
        "content_type": "text/plain",
        "source": "192.0.2.7:40000",
        "transport": "udp",
    }
