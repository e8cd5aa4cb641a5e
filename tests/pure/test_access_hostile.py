"""Access that holds against forged senders (issue 13, items 14, 15 and 17), through the
Dispatcher with fake clocks: rate limits forgers cannot evict or drain, a lockout after
wrong codes, codes spent for every path, no reply that tells configured users from
strangers where nobody authenticates senders, and no code in the logs.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.load import parse_config
from agent.core.access import senders_authenticated
from agent.core.codes import MemoryStore
from agent.core.dispatch import Dispatcher
from agent.core.ratelimit import MAX_SOURCES_PER_USER, MAX_STRANGERS, RateLimiter
from agent.core.redact import redact_codes
from agent.core.totp import totp
from lab.fakes import Clock, FakeDevice
from lab.rigs import ACCESS_CONFIG, ALICE, EVE, GUEST, KEY, OWNER, SECRET
from lab.strategies import BODIES, JSON_BODIES

# mqtt:local shares alice's secret: B/command is another path to the same door.
SHARED = (
    ACCESS_CONFIG.replace(
        'allow = ["sip:owner@pbx.example.org", "mqtt:local"]',
        'allow = ["sip:owner@pbx.example.org"]',
    )
    + f'\n[access.users."mqtt:local"]\ntotp_secret = "{SECRET}"\n'
)


class Rig:
    def __init__(
        self,
        on_forbidden: str = "reply",
        text: str = ACCESS_CONFIG,
        store: MemoryStore | None = None,
    ) -> None:
        self.config = parse_config(text.format(on_forbidden=on_forbidden))
        self.device = FakeDevice()
        self.clock = Clock(1000.0)
        self.wall = Clock(1_700_000_000.0)
        self.dispatcher = Dispatcher(
            self.config.access,
            self.device,
            clock=self.clock,
            wall_clock=self.wall,
            code_store=store,
        )

    def send(
        self, sender: str, body: str, *, source: str = "192.0.2.1:5060", auth: bool = True
    ) -> str:
        return self.dispatcher.handle(
            sender, body, "text/plain", source=source, authenticated=auth
        ).reply

    def code(self) -> str:
        return totp(KEY, self.wall.now)


# -- rate limits ----------------------------------------------------------------------


def test_forged_strangers_cannot_evict_a_users_bucket() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(60, 3, clock, known=lambda who: who == "alice")
    assert [limiter.take("alice", "a").allowed for _ in range(4)] == [True] * 3 + [False]
    for i in range(MAX_STRANGERS * 3):
        limiter.take(f"forged{i}", "x")
    assert limiter.take("alice", "a").allowed is False  # not reset to a fresh burst
    assert limiter.sizes() == (1, MAX_STRANGERS)


def test_a_forger_elsewhere_cannot_drain_the_real_users_bucket() -> None:
    rig = Rig()
    for _ in range(50):
        rig.send(ALICE, "status", source="198.51.100.66:5060", auth=False)
    assert rig.send(ALICE, "status", source="192.0.2.10:5060", auth=False).startswith("ok:")
    # Her buckets from other places are bounded; evicting one only refills it.
    limiter = rig.dispatcher.limiter
    for i in range(MAX_SOURCES_PER_USER * 4):
        limiter.take("sip:alice@pbx.example.org", f"203.0.113.{i}")
    assert limiter.sizes()[0] <= MAX_SOURCES_PER_USER


# -- the lockout ----------------------------------------------------------------------


def test_wrong_codes_lock_the_door_with_an_alert(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    caplog.set_level(logging.INFO)
    for i in range(5):
        rig.clock.now += 60
        assert rig.send(ALICE, f"{i:06d} on gate").startswith("error: one-time code not")
    alerts = [r for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR
    assert "5 wrong one-time codes for sip:alice@pbx.example.org" in alerts[0].getMessage()
    assert rig.dispatcher.counters.get("access.code.lockout") == 1
    assert rig.dispatcher.counters.get("access.code.wrong") == 5
    rig.clock.now += 60
    assert rig.send(ALICE, f"{rig.code()} on gate") == (
        "error: one-time codes are locked for 15m after repeated wrong codes"
    )
    assert rig.device.calls == []


# -- spent for every path, across restarts ------------------------------------------------


def test_a_code_spent_over_sip_is_spent_for_mqtt_and_after_a_restart() -> None:
    store = MemoryStore()  # what outlives a restart (the codes file: tests/adapters)
    rig = Rig(text=SHARED, store=store)
    code = rig.code()
    assert rig.send(ALICE, f"{code} on gate") == "ok: gate on"
    assert rig.send("mqtt:local", f"{code} off gate", source="mqtt").startswith(
        "error: one-time code not accepted"
    )
    restarted = Rig(text=SHARED, store=store)
    assert restarted.send(ALICE, f"{code} off gate").startswith("error: one-time code not")
    restarted.wall.now += 30
    assert restarted.send("mqtt:local", f"{restarted.code()} off gate") == "ok: gate off"


# -- enumeration --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    who=st.sampled_from([ALICE, GUEST, OWNER]),
    body=st.one_of(
        BODIES,
        st.sampled_from(["help", "on gate", "123456 pulse gate", "toggle lamp", "set dimmer 50%"]),
    ),
    json_body=JSON_BODIES,
    on_forbidden=st.sampled_from(["reply", "silent"]),
)
def test_without_authentication_refusals_look_the_same_for_users_and_strangers(
    who: str, body: str, json_body: str, on_forbidden: str
) -> None:
    for text, content_type in ((body, "text/plain"), (json_body, "application/json")):
        stranger = Rig(on_forbidden).dispatcher.handle(
            EVE, text, content_type, source="198.51.100.7:5060", authenticated=False
        )
        rig = Rig(on_forbidden)
        user = rig.dispatcher.handle(
            who, text, content_type, source="198.51.100.7:5060", authenticated=False
        )
        carried_out = user.authorized and user.name not in (None, "help")
        if not carried_out:
            assert user.reply == stranger.reply, (who, text)
            assert rig.device.calls == [] and set(rig.device.levels.values()) == {0.0}


def test_with_authentication_users_keep_their_helpful_answers() -> None:
    rig = Rig()
    assert rig.send(GUEST, "on lamp").startswith("error: 'on' is not allowed for you")
    assert rig.send(GUEST, "help") == "ok: commands: help - list the commands you may use; " + (
        "status - outputs, registration, uptime"
    )
    assert rig.send(EVE, "help") == "error: forbidden"
    assert rig.send(EVE, "xyzzy") == "error: forbidden"
    assert rig.send(GUEST, "xyzzy").startswith("error: unknown command 'xyzzy'")


def test_without_authentication_the_rate_limit_is_silent_for_everyone() -> None:
    rig = Rig()
    replies = [rig.send(OWNER, "status", auth=False) for _ in range(5)]
    assert replies[3:] == ["", ""]


# -- no code in the logs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["123456 pulse gate", "12345 pulse gate", "1234567 pulse gate", "123 456 pulse gate",
     '{"command": "pulse", "target": "gate", "code": "123456"}'],
)  # fmt: skip
def test_codes_never_reach_the_log(body: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for sender in (ALICE, GUEST, EVE):
        for auth in (True, False):
            Rig().dispatcher.handle(
                sender,
                body,
                "application/json" if body.startswith("{") else "text/plain",
                authenticated=auth,
            )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for digits in ("123456", "12345", "1234567", "123 456"):
        assert digits not in logged


def test_redaction_keeps_ordinary_numbers() -> None:
    assert redact_codes("blink lamp 200ms 800ms 5; set fan 40%") == (
        "blink lamp 200ms 800ms 5; set fan 40%"
    )
    assert redact_codes('{"code": "654321"}') == '{"code": "******"}'


@pytest.mark.parametrize(
    ("sip_table", "authenticated"),
    [
        ('uri = "sip:agent@127.0.0.1"', False),  # direct mode: nobody vouches for a From
        ('uri = "sip:a@pbx.example.org"\nregistrar = "sip:pbx.example.org"', True),
        ('uri = "sip:a@pbx.example.org"\nproxy = "sip:pbx.example.org;lr"', True),
        (
            'uri = "sip:a@pbx.example.org"\nregistrar = "sip:pbx.example.org"\n'
            'accept_from = "anyone"',
            False,  # requests straight to the port are taken: Froms are not vouched for
        ),
    ],
)
def test_senders_are_authenticated_only_when_every_request_comes_through_the_proxy(
    sip_table: str, authenticated: bool
) -> None:
    config = parse_config(f'[device]\nid = "t"\n[sip]\n{sip_table}\n')
    assert senders_authenticated(config.sip) is authenticated
