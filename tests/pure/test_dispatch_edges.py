"""The dispatcher's edges (agent.core.dispatch): unauthenticated senders (direct mode) get one
answer whoever they are, `on_forbidden = "silent"` silences it, the rate limit's bucket is
the sender's address (host, IPv6 too), and a reload changes the code lockout's numbers.

Oracles: the README's access section (rate limit per sender and address, "help" for
everyone when Froms are not vouched for, silent mode) and lab.rigs' ACCESS_CONFIG.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from agent.config.load import parse_config
from agent.core.codes import SecretState
from agent.core.dispatch import Dispatcher, host_of
from agent.core.totp import totp
from lab.fakes import Clock, FakeDevice
from lab.rigs import ACCESS_CONFIG, ALICE, EVE, KEY, OWNER


def dispatcher(
    on_forbidden: str = "reply", store: object | None = None
) -> tuple[Dispatcher, Clock]:
    clock = Clock(1000.0)
    access = parse_config(ACCESS_CONFIG.format(on_forbidden=on_forbidden)).access
    return Dispatcher(
        access, FakeDevice(), clock=clock, wall_clock=lambda: 1_800_000_000.0, code_store=store
    ), clock  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "host"),
    [
        ("192.0.2.7:5060", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("[2001:db8::1]:5060", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("pbx.example.org:5061", "pbx.example.org"),
        ("", ""),
    ],
)
def test_host_of(source: str, host: str) -> None:
    assert host_of(source) == host


@pytest.mark.parametrize(("sender", "known"), [(OWNER, True), (EVE, False)])
def test_unauthenticated_help_is_the_whole_language_for_everyone(sender: str, known: bool) -> None:
    d, _ = dispatcher()
    outcome = d.handle(sender, "help", authenticated=False)
    assert (outcome.authorized, outcome.name, outcome.target) == (known, "help", None)
    assert outcome.reply.startswith("ok: ") and "status" in outcome.reply
    assert outcome.reply == d.handle(EVE, "help", source="x", authenticated=False).reply


def test_unauthenticated_help_in_silent_mode_is_silence() -> None:
    d, _ = dispatcher("silent")
    assert d.handle(OWNER, "help", authenticated=False).reply == ""


@pytest.mark.parametrize(
    ("mode", "reply"), [("reply", "error: unknown command 'fly'"), ("silent", "")]
)
def test_unauthenticated_bad_command_gets_the_same_answer_whoever_sends_it(
    mode: str, reply: str
) -> None:
    d, _ = dispatcher(mode)
    for sender in (OWNER, EVE):
        outcome = d.handle(sender, "fly gate", authenticated=False)
        assert outcome.reply.startswith(reply) if reply else outcome.reply == ""
        assert outcome.name is None


def test_a_stranger_in_silent_mode_gets_nothing_for_a_bad_command() -> None:
    d, _ = dispatcher("silent")
    assert d.handle(EVE, "fly gate").reply == ""
    d, _ = dispatcher("reply")
    assert d.handle(EVE, "fly gate").reply == "error: forbidden"


def test_the_rate_limit_is_per_address_and_counted() -> None:
    d, _ = dispatcher()  # rate_burst = 3
    replies = [d.handle(ALICE, "status", source="192.0.2.7:5060").reply for _ in range(4)]
    assert [r.startswith("ok:") for r in replies] == [True, True, True, False]
    assert replies[3].startswith("error: too many commands; try again in ")
    assert d.counters.get("access.command.limited") == 1
    # Another port of the same host is the same bucket; another host has its own.
    assert d.handle(ALICE, "status", source="192.0.2.7:5062").reply == ""
    assert d.handle(ALICE, "status", source="[2001:db8::1]:5060").reply.startswith("ok:")
    assert d.counters.get("access.command.limited") == 2


def test_a_limited_stranger_or_unauthenticated_sender_gets_no_wait_time() -> None:
    d, _ = dispatcher()
    for _ in range(3):
        d.handle(EVE, "status")
    assert d.handle(EVE, "status").reply == ""
    for _ in range(3):
        d.handle(ALICE, "status", source="192.0.2.9", authenticated=False)
    assert d.handle(ALICE, "status", source="192.0.2.9", authenticated=False).reply == ""


def test_strangers_exhausting_their_buckets_leave_configured_users_theirs() -> None:
    d, _ = dispatcher()
    for i in range(10):
        d.handle(f"sip:eve{i}@pbx.example.org", "status", source="203.0.113.9")
    assert d.handle(ALICE, "status", source="203.0.113.9").reply.startswith("ok:")


def test_a_reload_changes_the_code_lockout() -> None:
    d, _ = dispatcher()
    access = replace(d.access, code_failures=2, code_lockout_s=600.0)
    d.reconfigure(access)
    assert (d.codes.max_failures, d.codes.lockout_s) == (2, 600.0)
    for _ in range(2):
        d.handle(ALICE, "000000 pulse gate")
    assert d.counters.get("access.code.wrong") == 2
    assert d.counters.get("access.code.lockout") == 1
    right = totp(KEY, 1_800_000_000.0)
    assert d.handle(ALICE, f"{right} pulse gate").reply.startswith("error: ")  # locked out


class FailingStore:
    """A code store whose disk refuses every write."""

    def load(self) -> tuple[dict[str, SecretState], bool]:
        return {}, False

    def save(self, states: dict[str, SecretState], *, sync: bool) -> bool:
        return False


def test_a_right_code_that_cannot_be_recorded_is_refused_and_counted() -> None:
    d, _ = dispatcher(store=FailingStore())
    right = totp(KEY, 1_800_000_000.0)
    assert d.handle(ALICE, f"{right} pulse gate").reply.startswith("error: ")
    assert d.counters.get("access.code.unrecorded") == 1
    assert d.counters.get("access.code.wrong") == 0


def test_an_unauthenticated_parse_errors_record_says_if_the_sender_is_configured() -> None:
    d, _ = dispatcher()
    assert d.handle(OWNER, "fly", authenticated=False).authorized is True
    assert d.handle(EVE, "fly", authenticated=False).authorized is False


def test_a_flood_of_strangers_does_not_refill_a_limited_users_bucket() -> None:
    d, _ = dispatcher()  # rate_burst = 3
    for _ in range(3):
        d.handle(ALICE, "status", source="192.0.2.7")
    assert d.handle(ALICE, "status", source="192.0.2.7").reply.startswith("error: too many")
    for i in range(1100):  # more strangers than their table holds (MAX_STRANGERS)
        d.handle(f"sip:s{i}@pbx.example.org", "status", source="192.0.2.7")
    assert d.handle(ALICE, "status", source="192.0.2.7").reply == ""  # still limited


def test_the_configured_code_failures_start_the_lockout() -> None:
    clock = Clock(1000.0)
    text = ACCESS_CONFIG.format(on_forbidden="reply").replace(
        "rate_burst = 3", 'rate_burst = 30\ncode_failures = 2\ncode_lockout = "10m"'
    )
    d = Dispatcher(parse_config(text).access, FakeDevice(), clock=clock)
    d.handle(ALICE, "000000 pulse gate")
    d.handle(ALICE, "000001 pulse gate")
    assert d.counters.get("access.code.lockout") == 1
    assert d.codes.lockout_s == 600.0


class CountingStore:
    """A code store that counts how often its record is read."""

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> tuple[dict[str, SecretState], bool]:
        self.loads += 1
        return {}, False

    def save(self, states: dict[str, SecretState], *, sync: bool) -> bool:
        return True


def test_the_code_record_is_read_at_start_only_where_a_user_has_a_secret() -> None:
    # With a secret, the record is read at start (a damaged one is reported then, not at
    # the first code); without one, never, until a reload adds the first secret.
    with_secret = CountingStore()
    d, _ = dispatcher(store=with_secret)
    assert with_secret.loads == 1
    d.reconfigure(d.access)
    assert with_secret.loads == 1  # the guard is kept: spent codes stay spent

    without = CountingStore()
    text = ACCESS_CONFIG.format(on_forbidden="reply")
    access = parse_config(text).access
    no_secrets = replace(access, users=tuple(replace(u, totp_secret=None) for u in access.users))
    d = Dispatcher(no_secrets, FakeDevice(), code_store=without)  # type: ignore[arg-type]
    assert without.loads == 0
    assert d.handle(OWNER, "status").ok
    assert without.loads == 0
    d.reconfigure(access)
    assert without.loads == 1
    right = totp(KEY, time.time())
    assert d.handle(ALICE, f"{right} pulse gate").ok
