"""Several SIP accounts: reading [[sip.accounts]], the device's registration as a whole,
and what Home Assistant is told (the first account's entity unchanged)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace

import pytest

from agent.config.load import parse_config
from agent.config.model import ConfigError
from agent.core import accounts
from agent.core.agent import Agent
from agent.core.discovery import announcements
from agent.core.events import MqttConnected
from agent.core.explain import explain
from agent.core.registration import RegState
from agent.core.reload import plan_reload
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, message

BASE = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.home"
registrar = "sip:pbx.home"
password = "x"
{extra}
[mqtt]
host = "localhost"
[gpio]
pin_factory = "mock"
"""

PUBLIC = """
[[sip.accounts]]
name = "public"
uri = "sip:+4930123@provider.example"
registrar = "sip:provider.example"
password = "y"
transport = "tcp"
"""


def test_a_second_account_has_its_own_identity_and_shares_the_policy() -> None:
    config = parse_config(BASE.format(extra='accept_from = "proxy"\n' + PUBLIC))
    first, public = config.accounts
    assert (first.name, first.listen_port, first.presence) == ("main", 5060, "publish")
    assert (public.name, public.uri, public.transport) == (
        "public", "sip:+4930123@provider.example", "tcp",
    )  # fmt: skip
    assert (public.listen_port, public.presence) == (0, "off")  # any free port; no presence
    assert (public.accept_from, public.limits) == (first.accept_from, first.limits)


def test_tls_anywhere_is_tls_in_use() -> None:
    # What keeps OpenSSL's error texts (agent.adapters.sip.binding): any TLS account, or MQTT.
    assert not parse_config(BASE.format(extra=PUBLIC)).uses_tls
    assert parse_config(BASE.format(extra=PUBLIC.replace('"tcp"', '"tls"'))).uses_tls
    assert parse_config(BASE.format(extra='transport = "tls"\n' + PUBLIC)).uses_tls
    assert parse_config(BASE.format(extra="").replace("[mqtt]\n", "[mqtt]\ntls = true\n")).uses_tls
    assert not parse_config(
        BASE.format(extra="").replace('[mqtt]\nhost = "localhost"\n', "")
    ).uses_tls


def test_one_sip_table_is_one_account() -> None:
    config = parse_config(BASE.format(extra=""))
    assert [a.name for a in config.accounts] == ["main"] and config.more_accounts == ()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('[[sip.accounts]]\nuri = "sip:a@b"\nregistrar = "sip:b"',
         "sip.accounts[0].name: required key is missing"),
        ('[[sip.accounts]]\nname = "main"\nuri = "sip:a@b"\nregistrar = "sip:b"',
         "sip.accounts[0].name: 'main' is already another account's"),
        ('[[sip.accounts]]\nname = "Public!"\nuri = "sip:a@b"\nregistrar = "sip:b"',
         "sip.accounts[0].name: 'Public!' must match [a-z0-9_-]+"),
        ('[[sip.accounts]]\nname = "p"\nuri = "sip:a@b"',
         "sip.accounts[0].registrar: required key is missing"),
        ('[[sip.accounts]]\nname = "p"\nuri = "sip:a@b"\nregistrar = "sip:b"\npresence = "serve"',
         "sip.accounts[0].presence: is the same for every account: set it in [sip]"),
        ('[[sip.accounts]]\nname = "p"\nuri = "sip:a@b"\nregistrar = "sip:b"\n'
         'nameservers = ["192.0.2.53"]',
         "sip.accounts[0].nameservers: is the same for every account: set it in [sip]"),
        ('[[sip.accounts]]\nname = "p"\nuri = "sip:a@b"\nregistrar = "sip:b"\n'
         '[[sip.accounts.accounts]]\nname = "q"',
         "sip.accounts[0].accounts: unknown key"),
        ('[[sip.accounts]]\nname = "p"\nuri = "sip:a@b"\nregistrar = "sip:b"\n'
         'listen = "0.0.0.0:5060"', "sip.accounts[0].listen: 0.0.0.0:5060 (udp) is already"),
        ("".join(f'[[sip.accounts]]\nname = "a{i}"\nuri = "sip:a@b"\nregistrar = "sip:b"\n'
                 for i in range(4)), "sip.accounts: at most 4 accounts in all"),
    ],
)  # fmt: skip
def test_account_problems_name_the_key(extra: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE.format(extra=extra))
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_several_accounts_need_a_registrar_in_sip_too() -> None:
    text = BASE.format(extra=PUBLIC).replace('registrar = "sip:pbx.home"\n', "", 1)
    with pytest.raises(ConfigError, match="several accounts need a registrar each"):
        parse_config(text)


REGISTERED = RegState("registered", 200, "OK", 300)
FAILED = RegState("failed", 403, "Forbidden", 0)
TRYING = RegState("registering", 0, "", 0)


@pytest.mark.parametrize(
    ("states", "overall"),
    [
        ({"main": REGISTERED, "public": FAILED}, REGISTERED),
        ({"main": FAILED, "public": REGISTERED}, REGISTERED),  # any account makes it ready
        ({"main": TRYING, "public": FAILED}, TRYING),  # none: the first account's
        ({"main": FAILED}, FAILED),
    ],
)
def test_the_device_is_registered_when_any_account_is(states, overall) -> None:  # type: ignore[no-untyped-def]
    assert accounts.overall(states) == overall


def test_the_summary_names_each_account_only_when_there_are_several() -> None:
    assert accounts.summary({"main": REGISTERED}) == "registered (200 OK)"
    assert accounts.summary({"main": REGISTERED, "public": FAILED}) == (
        "main registered (200 OK); public failed (403 Forbidden)"
    )


def test_home_assistant_gets_a_registration_sensor_per_further_account() -> None:
    single = announcements(parse_config(BASE.format(extra="")))
    double = announcements(parse_config(BASE.format(extra=PUBLIC)))
    # The first account's entity is the one a single-account agent always had.
    topic = "homeassistant/sensor/sipagent_porch/registration/config"
    assert json.loads(single[topic]) == json.loads(double[topic])
    assert json.loads(single[topic])["unique_id"] == "sipagent_porch_registration"
    extra = json.loads(double["homeassistant/sensor/sipagent_porch/registration_public/config"])
    assert extra["unique_id"] == "sipagent_porch_registration_public"
    assert extra["state_topic"] == "sipagent/porch/registration/public"
    assert set(double) - set(single) == {
        "homeassistant/sensor/sipagent_porch/registration_public/config"
    }


@pytest.mark.parametrize(
    ("account", "sender", "misrouted"),
    [
        ("main", "sip:owner@pbx.home", False),
        ("public", "sip:+4917@provider.example", False),
        ("public", "sip:friend@elsewhere.example", False),  # a stranger either way
        ("public", '"Owner" <sip:owner@PBX.home>', True),  # the PBX's user, via the provider
        ("main", "sip:+4930123@provider.example", True),
        ("public", "garbage", False),
    ],
)
def test_a_from_of_another_accounts_domain_is_never_vouched_for(
    account: str, sender: str, misrouted: bool
) -> None:
    config = parse_config(BASE.format(extra=PUBLIC))
    assert (accounts.misrouted(config, account, sender) is not None) is misrouted
    single = parse_config(BASE.format(extra=""))
    assert accounts.misrouted(single, "main", sender) is None


def test_explain_shows_each_account_and_never_its_password() -> None:
    text = BASE.format(extra=PUBLIC.replace('password = "y"', 'password = "provider-secret"'))
    config = parse_config(text)
    lines = explain(config, tomllib.loads(text))
    assert "sip.accounts[0].password = (set)" in lines
    assert 'sip.accounts[0].uri = "sip:+4930123@provider.example"' in lines
    assert not [line for line in lines if "provider-secret" in line]
    assert any("sipagent/porch/registration/public" in line for line in lines)


def test_a_reload_that_changes_the_accounts_needs_a_restart() -> None:
    running = parse_config(BASE.format(extra=PUBLIC))
    loaded = parse_config(BASE.format(extra=PUBLIC.replace("tcp", "udp")))
    plan = plan_reload(running, loaded)
    assert plan.needs_restart == ("sip.accounts",)
    assert plan.config.more_accounts == running.more_accounts


def test_the_owner_of_the_pbx_through_the_provider_is_relayed_never_obeyed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = BASE.format(extra=PUBLIC) + '[access]\nallow = ["sip:owner@pbx.home"]\n'
    config = parse_config(text.replace("[gpio]", "[gpio]\n", 1) + "[gpio.outputs.gate]\npin = 17\n")
    sip, mqtt, pins = FakeSip(), FakeLink(), FakePins()
    agent = Agent(config, sip, pins, mqtt, FakeNotifier(), outbox=FakeOutbox())
    mqtt.turn_ends = agent.flush
    agent.started_sip()
    agent.handle(MqttConnected())
    owner = {"from_uri": "<sip:owner@pbx.home>", "body": "on gate"}
    agent.on_message(replace(message(**owner), account="public"))
    assert pins.state["gate"] is False and sip.sent == []
    record = json.loads(mqtt.last("sipagent/porch/message/in"))
    assert record["authorized"] is False
    assert agent.counters.get("sip.message.misrouted") == 1
    agent.on_message(replace(message(**owner), account="main"))
    assert pins.state["gate"] is True
    assert (sip.sent[-1][1], sip.accounts[-1]) == ("ok: gate on", "main")


# -- edges (scripts/mutation.py): one account's registration in words, part by part ----------


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (RegState("registered", 200, "OK", 300), "registered (200 OK)"),
        (
            RegState("registered", 200, "OK", 300, public="203.0.113.7:40123", server="b:5060"),
            "registered as 203.0.113.7:40123 via b:5060 (200 OK)",
        ),
        (RegState("registering", 0, "sent", 0), "registering (sent)"),
        (
            RegState("failed", 0, "cannot resolve x", 0, retry_in_s=7.6, attempt=2),
            "failed (cannot resolve x), retry 2 in 8s",
        ),
        (RegState("unregistered", 0, "not yet registered", 0), "unregistered"),
        (RegState("direct", 0, "no registrar", 0), "direct"),
    ],
)
def test_one_registration_in_words(state: RegState, words: str) -> None:
    assert accounts.summary({"main": state}) == words


def test_the_identity_of_an_account_or_its_name() -> None:
    config = parse_config(BASE.format(extra=PUBLIC))
    assert accounts.uri_of(config, "main") == "sip:porch@pbx.home"
    assert accounts.uri_of(config, "public") == "sip:+4930123@provider.example"
    assert accounts.uri_of(config, "nope") == "nope"


def test_a_further_accounts_sensor_is_the_first_ones_but_for_its_name_and_topic() -> None:
    double = announcements(parse_config(BASE.format(extra=PUBLIC)))
    first = json.loads(double["homeassistant/sensor/sipagent_porch/registration/config"])
    extra = json.loads(double["homeassistant/sensor/sipagent_porch/registration_public/config"])
    own = {"name", "state_topic", "json_attributes_topic", "unique_id"}
    assert {k: v for k, v in extra.items() if k not in own} == {
        k: v for k, v in first.items() if k not in own
    }
    assert extra["name"] == "Registration public"
    assert extra["json_attributes_topic"] == "sipagent/porch/registration/public"


def test_explain_lists_the_first_accounts_keys_and_each_further_ones() -> None:
    text = BASE.format(extra=PUBLIC)
    lines = explain(parse_config(text), tomllib.loads(text))
    assert 'sip.uri = "sip:porch@pbx.home"' in lines  # the first account stays
    assert 'sip.accounts[0].transport = "tcp"' in lines  # set: no "(default)"
    assert 'sip.accounts[0].listen = "0.0.0.0:0"  (default)' in lines
    assert "out sipagent/porch/registration/public  retained: registration of public" in lines
