"""Access rights, one-time codes, rate limits and hostile input, through the Dispatcher."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.load import parse_config
from agent.core.access import decide, identity_of
from agent.core.codes import CodeResult, Verdict
from agent.core.commands import COMMANDS, Command, CommandError, parse_request
from agent.core.dispatch import Dispatcher, Outcome
from agent.core.totp import totp
from lab.fakes import Clock, FakeDevice
from lab.rigs import ACCESS_CONFIG, ALICE, EVE, GUEST, KEY, OWNER
from lab.strategies import BODIES, JSON_BODIES


class Rig:
    def __init__(self, on_forbidden: str = "reply", access_extra: str = "") -> None:
        text = ACCESS_CONFIG.format(on_forbidden=on_forbidden)
        text = text.replace("rate_burst = 3\n", f"rate_burst = 3\n{access_extra}")
        self.config = parse_config(text)
        self.device = FakeDevice()
        self.clock = Clock(1000.0)
        self.wall = Clock(1_700_000_000.0)
        self.dispatcher = Dispatcher(
            self.config.access, self.device, clock=self.clock, wall_clock=self.wall
        )

    def send(self, sender: str, body: str, content_type: str = "text/plain") -> str:
        self.clock.now += 60  # plenty of tokens: these tests are not about the rate limit
        return self.dispatcher.handle(sender, body, content_type).reply

    def code(self) -> str:
        return totp(KEY, self.wall.now)


def test_allow_list_means_every_right_and_normalized_identities() -> None:
    rig = Rig()
    assert rig.send(OWNER, "on lamp") == "ok: lamp on"
    assert "presence" in rig.send(OWNER, "help")
    assert identity_of(OWNER) in rig.config.access.allow
    assert identity_of(OWNER) == "sip:owner@pbx.example.org"


@pytest.mark.parametrize("mode", ["reply", "silent"])
def test_strangers_get_forbidden_or_nothing_and_change_nothing(mode: str) -> None:
    rig = Rig(mode)
    expected = "error: forbidden" if mode == "reply" else ""
    for body in ("on lamp", "help", "nonsense", "x" * 5000, "on\x00lamp"):
        assert rig.send(EVE, body) == expected
    assert set(rig.device.levels.values()) == {0.0}


def test_rights_limit_commands_and_outputs_and_help_shows_only_them() -> None:
    rig = Rig()
    assert rig.send(ALICE, "on lamp") == "ok: lamp on"
    assert rig.send(ALICE, "toggle lamp") == (
        "error: 'toggle' is not allowed for you (you may use: help, on, off, pulse, status)"
    )
    assert rig.send(ALICE, "on dimmer") == (
        "error: output 'dimmer' is not allowed for you (your outputs: lamp, gate)"
    )
    assert rig.send(ALICE, "on nope").startswith("error: unknown output 'nope'")
    help_reply = rig.send(ALICE, "help")
    assert "pulse <output>" in help_reply and "toggle" not in help_reply
    assert rig.send(GUEST, "on lamp").startswith("error: 'on' is not allowed for you")
    assert rig.send(GUEST, "status").startswith("ok: ")
    assert rig.device.levels["dimmer"] == 0.0


def test_a_protected_output_needs_a_fresh_code_each_time() -> None:
    rig = Rig()
    assert rig.send(ALICE, "pulse gate") == (
        "error: 'gate' needs a one-time code: send '<code> pulse gate'"
    )
    code = rig.code()
    assert rig.send(ALICE, f"{code} pulse gate 2s") == "ok: gate pulsed 2s"
    assert rig.send(ALICE, f"{code} pulse gate 2s") == (
        "error: one-time code not accepted (wrong, expired or already used)"
    )
    assert rig.send(ALICE, "000000 on gate").startswith("error: one-time code not accepted")
    # The owner is in access.allow, but has no secret: the gate needs one for everyone.
    assert rig.send(OWNER, f"{code} on gate") == (
        "error: 'gate' needs a one-time code, and none is set up for you"
    )
    assert rig.device.calls == [("pulse", "gate", 2.0)]
    rig.wall.now += 30
    assert rig.send(ALICE, f'{{"command": "on", "target": "gate", "code": "{rig.code()}"}}',
                    "application/json") == "ok: gate on"  # fmt: skip


def test_a_code_is_not_spent_by_a_command_refused_for_another_reason() -> None:
    rig = Rig()
    code = rig.code()
    assert rig.send(ALICE, f"{code} toggle gate").startswith("error: 'toggle' is not allowed")
    assert rig.send(ALICE, f"{code} on gate") == "ok: gate on"


def test_the_rate_limit_bites_with_one_clear_error_then_silence() -> None:
    rig = Rig()
    d = rig.dispatcher
    replies = [d.handle(OWNER, "status").reply for _ in range(5)]
    assert [r.startswith("ok:") for r in replies[:3]] == [True] * 3
    assert replies[3] == "error: too many commands; try again in 10s"
    assert replies[4] == ""
    rig.clock.now += 10
    assert d.handle(OWNER, "status").ok
    # A stranger's flood is silent from the first refusal on.
    assert [d.handle(EVE, "on lamp").reply for _ in range(5)][3:] == ["", ""]


def test_decide_is_pure_and_checks_the_code_last() -> None:
    rig = Rig()
    checked: list[str] = []

    def check(who: str, key: bytes, code: str) -> CodeResult:
        checked.append(code)
        return CodeResult(Verdict.ACCEPTED)

    access, outputs = rig.config.access, ["gate", "lamp"]
    refused = decide(ALICE, Command("toggle", "gate"), "123456", access, outputs, check)
    assert not refused.allowed and checked == []
    allowed = decide(ALICE, Command("on", "gate"), "123456", access, outputs, check)
    assert allowed.allowed and checked == ["123456"]
    stranger = decide(EVE, Command("help"), None, access, outputs, check)
    assert not stranger.allowed and not stranger.known


def test_one_address_of_record_has_one_rate_limit_however_its_from_is_written() -> None:
    # Display name, host case, default port, URI parameters and tag differ; the address of
    # record is the same: writing the From differently must not buy more commands.
    spellings = [
        '"Owner" <sip:owner@PBX.example.org:5060;transport=tcp>;tag=1',
        "sip:owner@pbx.example.org",
        "<sip:owner@pbx.example.org;transport=udp>;tag=2",
        '"Not the owner, honest" <sip:owner@pbx.example.org>;tag=3',
    ]
    rig = Rig()
    replies = [rig.dispatcher.handle(sender, "status").reply for sender in spellings]
    assert [r.startswith("ok: ") for r in replies[:3]] == [True] * 3
    assert replies[3] == "error: too many commands; try again in 10s"
    # Another address of record still has its own bucket.
    assert rig.dispatcher.handle(ALICE, "status").ok


def test_the_configured_message_size_is_the_limit() -> None:
    rig = Rig(access_extra="max_message_bytes = 64\n")
    at_limit = "on lamp".ljust(64)
    assert rig.send(OWNER, at_limit) == "ok: lamp on"
    assert rig.send(OWNER, at_limit + " ") == "error: message of 65 bytes is longer than 64 bytes"
    # Bytes, not characters: 32 two-byte letters are 64 bytes, one more is too many.
    assert rig.send(OWNER, "é" * 33) == "error: message of 66 bytes is longer than 64 bytes"
    assert Rig().send(OWNER, at_limit + " ") == "ok: lamp on"  # the default is 1000 bytes


# -- no input raises ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(body=BODIES, content_type=st.sampled_from(["text/plain", "application/json"]))
def test_the_parser_raises_only_command_errors(body: str, content_type: str) -> None:
    try:
        request = parse_request(body, content_type)
    except CommandError as err:
        assert str(err)  # every refusal says why
    else:
        assert request.command.name in COMMANDS


# Who ACCESS_CONFIG knows, written out by hand: the oracle must not ask the code under test.
KNOWN_SENDERS = {
    OWNER: True,
    ALICE: True,
    GUEST: True,
    "mqtt:local": True,
    "<sip:ALICE@pbx.example.org>": False,  # the user part is case-sensitive
    "sip:owner@pbx.example.org.evil": False,
    EVE: False,
    "": False,
    "<>": False,
    "sip:": False,
}


@settings(max_examples=300, deadline=None)
@given(
    sender=st.sampled_from(sorted(KNOWN_SENDERS)),
    body=st.one_of(BODIES, JSON_BODIES),
    content_type=st.sampled_from(["text/plain", "application/json"]),
)
def test_the_dispatcher_never_raises_and_always_answers_known_senders(
    sender: str, body: str, content_type: str
) -> None:
    rig = Rig()
    outcome = rig.dispatcher.handle(sender, body, content_type)
    known = KNOWN_SENDERS[sender]
    assert outcome.reply.startswith(("ok: ", "error: "))
    if not known:
        assert outcome.reply == "error: forbidden" and outcome.authorized is False
        assert set(rig.device.levels.values()) == {0.0} and rig.device.calls == []
    # The protected gate never moves without a valid code (none of the words is one now).
    assert all(totp(KEY, rig.wall.now + s) != "123456" for s in (-30, 0, 30))
    assert rig.device.levels["gate"] == 0.0
    assert all(call[1] != "gate" for call in rig.device.calls)


LANGUAGE = "(commands: help, status, on, off, toggle, pulse, blink, set, presence)"


def test_every_decision_is_logged_with_who_what_and_why(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="agent.core.dispatch")
    rig = Rig()
    rig.send(OWNER, "on lamp")
    rig.dispatcher.handle(ALICE, "toggle lamp", via="MQTT")
    rig.send(EVE, "nonsense")
    rig.send(OWNER, "fly")
    rig.send(EVE, "on lamp")
    for _ in range(4):  # no time passes: the fourth is over the burst of 3
        rig.dispatcher.handle(GUEST, "status", via="call")
    fields = ("SENDER", "COMMAND", "VIA", "OK")
    logged = [
        (r.levelname, r.getMessage(), {f: getattr(r, f) for f in fields if hasattr(r, f)})
        for r in caplog.records
        if r.name == "agent.core.dispatch"
    ]
    owner, alice = "sip:owner@pbx.example.org", "sip:alice@pbx.example.org"
    guest, eve = "sip:guest@pbx.example.org", "sip:eve@pbx.example.org"
    status = {"SENDER": guest, "COMMAND": "status", "VIA": "call", "OK": "1"}
    assert logged[:5] == [
        ("INFO", f"command 'on lamp' from {owner} (SIP): ok: lamp on",
         {"SENDER": owner, "COMMAND": "on", "VIA": "SIP", "OK": "1"}),
        ("WARNING", f"refused 'toggle lamp' from {alice} (MQTT): {alice} may not use 'toggle'",
         {"SENDER": alice, "COMMAND": "toggle", "VIA": "MQTT", "OK": "0"}),
        ("WARNING", f"refused a message from {eve} (SIP): not allowed (unknown command "
         f"'nonsense' {LANGUAGE})", {}),
        ("INFO", f"bad command from {owner} (SIP): unknown command 'fly' {LANGUAGE}", {}),
        ("WARNING", f"refused 'on lamp' from {eve} (SIP): {eve} is not in access.allow or "
         "access.users", {"SENDER": eve, "COMMAND": "on", "VIA": "SIP", "OK": "0"}),
    ]  # fmt: skip
    assert [(level, fields) for level, _, fields in logged[5:8]] == [("INFO", status)] * 3
    assert logged[8] == (
        "WARNING",
        f"refused a command from {guest} (call): rate limit, next in 10s",
        {},
    )


def test_outcomes_name_the_command_and_whether_the_sender_is_authorized() -> None:
    rig = Rig()
    assert rig.dispatcher.handle(OWNER, "on lamp") == Outcome(True, "on", "lamp", "ok: lamp on")
    refused = Outcome(False, "toggle", "lamp", rig.send(ALICE, "toggle lamp"))
    assert rig.dispatcher.handle(ALICE, "toggle lamp") == refused
    assert rig.dispatcher.handle(EVE, "on gate") == Outcome(False, "on", "gate", "error: forbidden")
    assert rig.dispatcher.handle(EVE, "fly") == Outcome(False, None, None, "error: forbidden")
    bad = rig.dispatcher.handle(OWNER, "fly")
    assert bad == Outcome(True, None, None, f"error: unknown command 'fly' {LANGUAGE}")
    silent = Rig("silent")
    assert silent.dispatcher.handle(EVE, "on gate") == Outcome(False, "on", "gate", "")
    assert silent.dispatcher.handle(EVE, "fly") == Outcome(False, None, None, "")
    for _ in range(3):
        silent.dispatcher.handle(ALICE, "status")
    limited = "error: too many commands; try again in 10s"
    assert silent.dispatcher.handle(ALICE, "status") == Outcome(True, None, None, limited)
    for _ in range(4):
        silent.dispatcher.handle(EVE, "status")
    assert silent.dispatcher.handle(EVE, "status") == Outcome(False, None, None, "")


def test_a_rate_limit_wait_is_said_in_whole_seconds_and_at_least_one() -> None:
    rig = Rig(access_extra="")
    rig.config = parse_config(ACCESS_CONFIG.format(on_forbidden="reply").replace(
        "rate_per_minute = 6", "rate_per_minute = 6000"))  # fmt: skip
    d = Dispatcher(rig.config.access, rig.device, clock=rig.clock, wall_clock=rig.wall)
    for _ in range(3):
        d.handle(OWNER, "status")
    assert d.handle(OWNER, "status").reply == "error: too many commands; try again in 1s"


def test_a_reload_keeps_the_buckets_unless_the_rate_changed() -> None:
    rig = Rig()
    d = rig.dispatcher
    for _ in range(3):
        d.handle(OWNER, "status")
    d.reconfigure(parse_config(ACCESS_CONFIG.format(on_forbidden="silent")).access)
    assert d.access.on_forbidden == "silent"
    assert not d.handle(OWNER, "status").ok  # same rate: the bucket is still empty
    faster = ACCESS_CONFIG.format(on_forbidden="reply").replace("rate_burst = 3", "rate_burst = 5")
    d.reconfigure(parse_config(faster).access)
    assert [d.handle(OWNER, "status").ok for _ in range(6)] == [True] * 5 + [False]
    rig.clock.now += 12  # the new limiter runs on the same clock: one token per 10 s
    assert d.handle(OWNER, "status").ok


def test_decide_says_who_and_why_for_each_rule() -> None:
    from agent.core.access import Decision
    from agent.core.codes import CodeResult, Verdict

    rig = Rig()
    access, outputs = rig.config.access, ["gate", "lamp", "dimmer"]
    checked: list[tuple[str, str]] = []

    verdicts = {
        "111111": CodeResult(Verdict.ACCEPTED),
        "333333": CodeResult(Verdict.LOCKED, locked_for_s=900),
        "444444": CodeResult(Verdict.UNRECORDED),
    }

    def check(who: str, key: bytes, code: str) -> CodeResult:
        checked.append((who, code))
        return verdicts.get(code, CodeResult(Verdict.WRONG, failures=1))

    def decide_(who: str, name: str, target: str | None, code: str | None = None) -> Decision:
        return decide(who, Command(name, target), code, access, outputs, check)

    alice, owner = "sip:alice@pbx.example.org", "sip:owner@pbx.example.org"
    guest, eve = "sip:guest@pbx.example.org", "sip:eve@pbx.example.org"
    assert decide_(eve, "on", "lamp") == Decision(
        False, f"{eve} is not in access.allow or access.users", known=False
    )
    assert decide_(alice, "toggle", "lamp") == Decision(
        False,
        f"{alice} may not use 'toggle'",
        reply="'toggle' is not allowed for you (you may use: help, on, off, pulse, status)",
    )
    assert decide_(alice, "on", "nope") == Decision(True, f"{alice} may use 'on'")
    assert decide_(alice, "status", None) == Decision(True, f"{alice} may use 'status'")
    assert decide_(alice, "on", "dimmer") == Decision(
        False,
        f"{alice} may not use output dimmer",
        reply="output 'dimmer' is not allowed for you (your outputs: lamp, gate)",
    )
    assert decide_(alice, "on", "lamp") == Decision(True, f"{alice} may use lamp")
    assert decide_(owner, "on", "gate") == Decision(
        False,
        f"{owner} has no totp secret for gate",
        reply="'gate' needs a one-time code, and none is set up for you",
    )
    assert decide_(alice, "pulse", "gate") == Decision(
        False,
        f"{alice} sent no one-time code for gate",
        reply="'gate' needs a one-time code: send '<code> pulse gate'",
    )
    assert decide_(alice, "on", "gate", "222222") == Decision(
        False,
        f"{alice} sent a bad or used one-time code for gate (1 wrong in a row)",
        reply="one-time code not accepted (wrong, expired or already used)",
    )
    assert decide_(alice, "on", "gate", "333333") == Decision(
        False,
        f"{alice}'s one-time codes are locked for 15m after wrong codes",
        reply="one-time codes are locked for 15m after repeated wrong codes",
    )
    assert decide_(alice, "on", "gate", "444444") == Decision(
        False,
        f"{alice} sent a valid one-time code for gate, but its use cannot be recorded "
        "(state directory): refused",
        reply="one-time code refused: its use cannot be recorded; try again later",
    )
    assert decide_(alice, "on", "gate", "111111") == Decision(
        True, f"{alice} may use gate with a valid one-time code"
    )
    assert checked == [(alice, c) for c in ("222222", "333333", "444444", "111111")]
    no_outputs = parse_config(
        ACCESS_CONFIG.format(on_forbidden="reply").replace(
            'commands = ["status"]', 'commands = ["on"]\noutputs = []'
        )
    ).access
    refused = decide(guest, Command("on", "lamp"), None, no_outputs, outputs, check)
    assert refused.reply == "output 'lamp' is not allowed for you (your outputs: none)"
    assert access.rights_of(identity_of(EVE)) is None
