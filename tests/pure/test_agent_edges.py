"""The agent's lifecycle as systemd and Home Assistant see it (agent.core.agent): the retained
registration before and after registering, READY=1 and STATUS= lines, a stop with sends still
open, a reload, the counters of messages that are relayed and never obeyed.

Oracles: the README's MQTT topic table (`B/registration`, `B/message/sent`) and its systemd
section (STATUS= names SIP and MQTT), with the agent on the fakes of its ports.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.codes import SecretState
from agent.core.counters import Counters
from agent.core.events import (
    MqttConnected,
    MqttDisconnected,
    MqttMessage,
    StatusLogRequested,
    StopRequested,
)
from agent.core.registration import RegState
from agent.core.totp import totp
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, message
from lab.rigs import PRESENCE_CONFIG, AgentRig

B = "sipagent/porch"
ROUTED = """
[device]
id = "porch"
[sip]
name = "pbx"
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
{accounts}
[access]
allow = ["sip:owner@pbx.example.org", "mqtt:local"]
[mqtt]
host = "localhost"
{mqtt}
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""
SECOND = """
[[sip.accounts]]
name = "public"
uri = "sip:porch@public.example.net"
registrar = "sip:public.example.net"
password = "pw2"
"""
DIRECT = """
[device]
id = "porch"
[sip]
uri = "sip:porch@192.0.2.7"
[access]
allow = ["sip:owner@192.0.2.9"]
"""


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def build(accounts: str = "", mqtt: str = "") -> tuple[Agent, FakeLink, FakeNotifier, FakeSip]:
    config = parse_config(ROUTED.format(accounts=accounts, mqtt=mqtt))
    link, notifier, sip = FakeLink(), FakeNotifier(), FakeSip()
    agent = Agent(config, sip, FakePins(config.gpio.outputs), link, notifier, outbox=FakeOutbox())
    link.turn_ends = agent.flush
    return agent, link, notifier, sip


def retained(link: FakeLink, topic: str) -> dict[str, object]:
    payload, kept = link.last_retained(f"{B}/{topic}")
    assert kept is True
    return json.loads(payload)


def test_before_registering_the_registration_says_not_yet_and_no_ready() -> None:
    agent, link, notifier, _ = build()
    agent.started_sip()
    assert retained(link, "registration") == {
        "state": "unregistered",
        "code": 0,
        "reason": "not yet registered",
        "expires": 0,
    }
    assert not any("READY" in m for m in notifier.messages)
    agent.on_registration(RegState("registered", 200, "OK", 300))
    assert retained(link, "registration") == {
        "state": "registered",
        "code": 200,
        "reason": "OK",
        "expires": 300,
    }
    [ready] = [m for m in notifier.messages if "READY" in m]
    assert ready["STATUS"].startswith("SIP registered (200 OK)")
    assert ready["STATUS"].endswith("; MQTT connected to broker:1883")


def test_direct_mode_is_ready_at_once_and_says_so() -> None:
    notifier = FakeNotifier()
    agent = Agent(parse_config(DIRECT), FakeSip(routed=False), FakePins(), None, notifier)
    agent.started_sip()
    assert notifier.messages == [{"READY": "1", "STATUS": "SIP direct; MQTT off"}]
    assert agent.status_summary() == "SIP direct; MQTT off"


def test_direct_mode_publishes_its_registration_as_direct() -> None:
    config = parse_config(DIRECT + '[mqtt]\nhost = "localhost"\n')
    link = FakeLink()
    agent = Agent(
        config, FakeSip(routed=False), FakePins(), link, FakeNotifier(), outbox=FakeOutbox()
    )
    agent.started_sip()
    assert retained(link, "registration") == {
        "state": "direct",
        "code": 0,
        "reason": "no registrar",
        "expires": 0,
    }


def test_an_mqtt_link_without_an_outbox_is_a_programming_error() -> None:
    config = parse_config(ROUTED.format(accounts="", mqtt=""))
    with pytest.raises(TypeError, match="outbox"):
        Agent(config, FakeSip(), FakePins(config.gpio.outputs), FakeLink(), FakeNotifier())


def test_with_two_accounts_each_has_its_registration_and_the_first_keeps_the_main_topic() -> None:
    agent, link, notifier, _ = build(accounts=SECOND)
    agent.started_sip()
    agent.on_registration(RegState("failed", 403, "Forbidden", 0), "public")
    agent.on_registration(RegState("registered", 200, "OK", 300))
    assert retained(link, "registration")["state"] == "registered"
    assert retained(link, "registration/pbx")["state"] == "registered"
    assert retained(link, "registration/public") == {
        "state": "failed",
        "code": 403,
        "reason": "Forbidden",
        "expires": 0,
    }
    status = notifier.messages[-1]["STATUS"]
    assert "pbx registered (200 OK)" in status and "public failed (403 Forbidden)" in status


def test_one_account_has_no_per_account_topic() -> None:
    agent, link, _, _ = build()
    agent.started_sip()
    assert not [t for t, _, _ in link.published if t.startswith(f"{B}/registration/")]


def test_a_failed_registration_is_a_warning_the_others_are_info(caplog) -> None:  # type: ignore[no-untyped-def]
    agent, _, _, _ = build()
    agent.started_sip()
    with caplog.at_level(logging.INFO, logger="agent.core.agent"):
        agent.on_registration(RegState("failed", 503, "Service Unavailable", 0))
        agent.on_registration(RegState("registered", 200, "OK", 300))
    levels = [(r.levelno, r.getMessage().split(" for ")[0]) for r in caplog.records]
    assert (logging.WARNING, "registration failed") in levels
    assert (logging.INFO, "registration registered") in levels


def test_the_same_registration_again_tells_systemd_nothing_new() -> None:
    agent, link, notifier, _ = build()
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    before, published = len(notifier.messages), len(link.published)
    agent.on_registration(RegState("registered", 200, "OK", 300))
    assert len(notifier.messages) == before
    assert len(link.published) == published


def test_status_follows_the_broker_connection() -> None:
    agent, link, notifier, _ = build()
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    link.connected = False
    agent.handle(MqttDisconnected("connection lost"))
    assert notifier.messages[-1]["STATUS"].endswith("; MQTT disconnected")
    link.connected = True
    agent.handle(MqttConnected())
    assert notifier.messages[-1]["STATUS"].endswith("; MQTT connected to broker:1883")


def test_a_stop_reports_every_open_send_as_failed() -> None:
    agent, link, _, sip = build()
    agent.started_sip()  # never registered: the send waits
    agent.handle(MqttConnected())
    request = {"to": "sip:x@example.org", "body": "hi", "id": "s1"}
    agent.handle(MqttMessage(f"{B}/message/send", json.dumps(request).encode(), False))
    assert sip.sent == []
    agent.handle(StopRequested("SIGTERM"))
    agent.handle(StopRequested("later"))
    assert agent.stop_reason == "SIGTERM"  # the first reason stays
    agent.stopping()
    sent = [json.loads(p) for t, p, _ in link.published if t == f"{B}/message/sent"]
    assert sent == [
        {
            "id": "s1",
            "to": "sip:x@example.org",
            "ok": False,
            "code": None,
            "reason": "agent stopped before the MESSAGE was sent",
            "attempts": 0,
        }
    ]


def test_a_status_request_logs_the_counters(caplog) -> None:  # type: ignore[no-untyped-def]
    agent, _, _, _ = build()
    agent.started_sip()
    agent.counters.bump("mqtt.command.invalid")
    agent.counters.bump("sip.message.truncated")
    with caplog.at_level(logging.INFO, logger="agent.core.agent"):
        agent.handle(StatusLogRequested("SIGUSR1"))
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("status")]
    assert line.startswith("status (SIGUSR1): ")
    assert line.endswith("counters: mqtt.command.invalid 1, sip.message.truncated 1")


def test_a_reload_announces_discovery_again_with_the_new_names() -> None:
    agent, link, _, _ = build(mqtt='discovery_prefix = "homeassistant"')
    agent.started_sip()
    agent.handle(MqttConnected())
    before = len(link.published)
    new = parse_config(
        ROUTED.format(accounts="", mqtt='discovery_prefix = "homeassistant"')
        + 'label = "Front gate"\n'
    )
    agent.reconfigure(new)
    assert agent.config is new
    configs = [json.loads(p) for t, p, _ in link.published[before:] if t.endswith("gate/config")]
    assert configs and configs[-1]["name"] == "Front gate"


@pytest.mark.parametrize(
    ("from_uri", "account", "counter"),
    [
        # A From of another account's domain, arriving on the first account.
        ("<sip:owner@public.example.net>", "pbx", "sip.message.misrouted"),
    ],
)
def test_a_misrouted_message_is_relayed_never_obeyed(
    from_uri: str, account: str, counter: str
) -> None:
    agent, link, _, sip = build(accounts=SECOND)
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    agent.handle(MqttConnected())
    agent.on_message(message(from_uri=from_uri, body="on gate", account=account))
    assert agent.counters.get(counter) == 1
    record = json.loads(link.last(f"{B}/message/in"))
    assert (record["authorized"], record["command"]) == (False, None)
    assert sip.sent == []


def test_an_unreadable_cpim_message_is_counted_and_not_obeyed() -> None:
    agent, link, _, sip = build()
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    agent.handle(MqttConnected())
    agent.on_message(message(body="not cpim at all", content_type="message/cpim"))
    assert agent.counters.get("sip.message.unreadable") == 1
    assert agent.counters.get("sip.message.misrouted") == 0
    assert sip.sent == []
    assert json.loads(link.last(f"{B}/message/in"))["command"] is None


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "TEXT/PLAIN"])
def test_a_command_with_parameters_in_its_content_type_is_still_a_command(
    content_type: str,
) -> None:
    agent, _, _, sip = build()
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    agent.on_message(message(body="on gate", content_type=content_type))
    assert [body for _, body, _ in sip.sent] == ["ok: gate on"]


def test_a_reply_the_sip_stack_refuses_is_logged_and_the_agent_goes_on(caplog) -> None:  # type: ignore[no-untyped-def]
    agent, _, _, sip = build()
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    with caplog.at_level(logging.WARNING, logger="agent.core.agent"):
        agent.on_message(message(from_uri="sip:", body="status"))  # no reply target
    assert sip.sent == []
    assert any("not sent" in r.getMessage() for r in caplog.records)


# -- the agent's wiring: the counters, the code store and calls reach the parts -------------------


def test_the_dispatchers_refusals_are_in_the_agents_counters() -> None:
    agent, _, _, _ = build()
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    for _ in range(30):
        agent.on_message(message(body="status"))
    assert agent.counters.get("access.command.limited") > 0


def test_a_spent_code_is_written_to_the_agents_code_store() -> None:
    class Store:
        def __init__(self) -> None:
            self.states: dict[str, SecretState] = {}

        def load(self) -> tuple[dict[str, SecretState], bool]:
            return {}, False

        def save(self, states: dict[str, SecretState], *, sync: bool) -> bool:
            self.states = dict(states)
            return True

    key = b"12345678901234567890"
    owner = '[access.users."sip:owner@pbx.example.org"]\ntotp_secret = "{}"\n'
    text = ROUTED.format(accounts="", mqtt="").replace(
        '"sip:owner@pbx.example.org", "mqtt:local"]', '"mqtt:local"]\nrequire_code = ["gate"]'
    )
    config = parse_config(text + owner.format(base64.b32encode(key).decode()))
    store, sip = Store(), FakeSip()
    agent = Agent(
        config, sip, FakePins(config.gpio.outputs), None, FakeNotifier(), code_store=store
    )
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    agent.on_message(message(body=f"{totp(key, time.time())} on gate"))
    assert sip.sent[-1][1] == "ok: gate on"
    assert len(store.states) == 1


def test_every_call_is_published_with_its_outcome() -> None:
    agent, link, _, _ = build(mqtt="")
    agent.started_sip()
    agent.handle(MqttConnected())
    code = agent.on_incoming_call('"Owner" <sip:owner@pbx.example.org>', "192.0.2.7:5060")
    record = json.loads(link.last(f"{B}/call/in"))
    assert (record["from"], record["code"], record["authorized"]) == (
        "sip:owner@pbx.example.org",
        code,
        True,
    )


def test_no_stop_is_asked_for_until_one_is() -> None:
    agent, _, _, _ = build()
    assert agent.stop_reason is None  # agent.loop stops once it is not None


def test_counters_given_to_the_agent_are_the_ones_it_counts_in() -> None:
    shared = Counters()
    config = parse_config(DIRECT)
    agent = Agent(config, FakeSip(routed=False), FakePins(), None, FakeNotifier(), counters=shared)
    assert agent.intake.recent is not None
    agent.intake.recent.capacity = 1  # without MQTT: retransmissions recognised in memory
    agent.started_sip()
    for key in ("a|1 MESSAGE|t", "b|1 MESSAGE|t"):
        agent.on_message(message(from_uri="sip:owner@192.0.2.9", body="hi", request_key=key))
    assert agent.counters is shared
    assert shared.get("sip.dedupe.forgotten") == 1


def test_diagnostics_are_announced_on_connect() -> None:
    agent, link, _, _ = build()
    agent.started_sip()
    agent.handle(MqttConnected())
    assert set(retained(link, "diagnostics")) >= {"pjproject", "last_error", "tls"}


GUEST = """
[access.users."sip:guest@192.0.2.9"]
commands = ["status"]
"""


def test_in_direct_mode_a_refusal_does_not_tell_a_configured_user_from_a_stranger() -> None:
    sip = FakeSip(routed=False)
    agent = Agent(parse_config(DIRECT + GUEST), sip, FakePins(), None, FakeNotifier())
    agent.started_sip()
    agent.on_message(message(from_uri="<sip:guest@192.0.2.9>", body="fly"))
    agent.on_message(message(from_uri="<sip:guest@192.0.2.9>", body="status"))
    agent.on_message(message(from_uri="<sip:guest@192.0.2.9>", body="on gate"))
    replies = [body for _, body, _ in sip.sent]
    assert replies[0].startswith("error: unknown command")  # everyone gets that one
    assert replies[1].startswith("ok: ")
    assert replies[2] == "error: forbidden"  # not "not allowed for you": Froms are forged


def test_in_direct_mode_each_source_address_has_its_own_rate_bucket() -> None:
    sip = FakeSip(routed=False)
    agent = Agent(parse_config(DIRECT), sip, FakePins(), None, FakeNotifier())
    agent.started_sip()
    owner = "<sip:owner@192.0.2.9>"
    for _ in range(20):  # a forger at another address spends his own bucket
        agent.on_message(message(from_uri=owner, body="status", source="198.51.100.66:5060"))
    before = len(sip.sent)
    agent.on_message(message(from_uri=owner, body="status", source="192.0.2.9:5060"))
    assert len(sip.sent) == before + 1 and sip.sent[-1][1].startswith("ok: ")


def test_a_reload_reaches_the_presence_keeper() -> None:
    rig = AgentRig()
    text = PRESENCE_CONFIG.format(mode="serve", extra='[mqtt]\nhost = "localhost"', sip="")
    new = parse_config(text.replace('note = "door {door}"', 'note = "the door is {door}"'))
    rig.agent.reconfigure(new)
    assert rig.keeper.config is new
    assert rig.keeper.current is not None and rig.keeper.current.note == "the door is closed"


def test_through_the_proxy_a_configured_user_hears_why_he_was_refused() -> None:
    text = ROUTED.format(accounts="", mqtt="") + GUEST.replace("192.0.2.9", "pbx.example.org")
    config = parse_config(text)
    sip = FakeSip()
    agent = Agent(config, sip, FakePins(config.gpio.outputs), None, FakeNotifier())
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    agent.on_message(message(from_uri="<sip:guest@pbx.example.org>", body="on gate"))
    assert sip.sent[-1][1].startswith("error: ") and sip.sent[-1][1] != "error: forbidden"


NOTIFY_ME = (
    "From: <sip:friend@elsewhere.example>\r\nTo: <sip:porch@public.example.net>\r\n"
    "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: m1\r\n"
    "imdn.Disposition-Notification: positive-delivery\r\n\r\n"
    "Content-Type: text/plain\r\n\r\nhello"
)


def test_a_delivery_notice_leaves_by_the_account_the_message_came_in_on() -> None:
    agent, _, _, sip = build(accounts=SECOND)
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300), "public")
    msg = message(
        from_uri="<sip:friend@elsewhere.example>",
        to_uri="<sip:porch@public.example.net>",
        body=NOTIFY_ME,
        content_type="message/cpim",
        account="public",
    )
    agent.on_message(msg)
    assert sip.content_types[0] == "message/cpim"  # the notice (then a reply to "hello")
    assert set(sip.accounts) == {"public"}


def test_a_new_error_reaches_b_diagnostics_at_the_next_turn() -> None:
    agent, link, _, _ = build()
    agent.started_sip()
    agent.handle(MqttConnected())
    agent.diagnostics.errors.emit(
        logging.LogRecord("agent", logging.ERROR, __file__, 1, "disk on fire", None, None)
    )
    agent.flush()
    assert retained(link, "diagnostics")["last_error"] == "disk on fire"
