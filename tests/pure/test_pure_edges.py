"""Edges of the small pure helpers: each bound exactly, each message exactly.

Written where mutation testing (scripts/mutation.py) found a change no test noticed: a `<`
that could be `<=`, a message nobody read, a branch nobody took.
"""

from __future__ import annotations

import pytest

from agent.config.model import Broker
from agent.core.brokers import BrokerChoice
from agent.core.durations import format_duration, parse_duration
from agent.core.health import Health, HealthPolicy, OutboxHealth, verdict
from agent.core.jsonin import JsonInputError, loads
from agent.core.ratelimit import MAX_STRANGERS, RateLimiter
from agent.core.timers import Timers
from agent.core.topics import Topics
from agent.core.totp import InvalidSecret, decode_secret
from agent.core.untrusted import BadText, check_text, excerpt
from lab.fakes import Clock

# -- health: a limit reached is not yet a limit passed ------------------------------------

POLICY = HealthPolicy(registration_grace_s=300, outbox_stuck_s=600, loop_stall_s=10)


@pytest.mark.parametrize(
    ("last_turn", "failing_since", "outbox", "healthy"),
    [
        (990, None, None, True),  # the loop turned exactly loop_stall_s ago
        (989.9, None, None, False),
        (1000, 700, None, True),  # failing for exactly the grace
        (1000, 699.9, None, False),
        (1000, None, OutboxHealth(1, 400), True),  # stuck for exactly the limit
        (1000, None, OutboxHealth(1, 399.9), False),
    ],
)
def test_health_limits_are_inclusive(last_turn, failing_since, outbox, healthy) -> None:  # type: ignore[no-untyped-def]
    result = verdict(
        1000,
        last_turn=last_turn,
        registration_failing_since=failing_since,
        outbox=outbox,
        policy=POLICY,
    )
    assert result.healthy is healthy


def test_health_can_be_asked_before_the_first_turn() -> None:
    assert Health(POLICY, now=50).check(55).healthy


# -- JSON depth: brackets opened and closed, counted right --------------------------------


def test_siblings_do_not_add_up_to_depth() -> None:
    assert loads("[" + ",".join(["[[]]"] * 20) + "]") == [[[]]] * 20


def test_depth_after_closing_is_counted_from_where_it_is() -> None:
    text = "[" * 7 + "[],[[]]" + "]" * 7  # 9 levels deep in its second branch
    with pytest.raises(JsonInputError, match="nested deeper than 8 levels"):
        loads(text)
    assert loads("[" * 7 + "[],[]" + "]" * 7) is not None  # 8 levels: fine


# -- brokers ---------------------------------------------------------------------------------


def test_failback_of_one_second_is_still_failback() -> None:
    clock = Clock(10.0)
    choice = BrokerChoice((Broker("a", 1), Broker("b", 2)), failback_s=1, clock=clock)
    choice.failed()
    choice.connected()
    assert choice.failback_in() == 1.0
    with pytest.raises(ValueError, match=r"^at least one broker is needed$"):
        BrokerChoice((), failback_s=1)


# -- timers ----------------------------------------------------------------------------------


def test_a_cancelled_timer_does_not_stop_the_ones_due_after_it() -> None:
    clock = Clock()
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_later(1, "a", lambda: ran.append("a"))
    timers.call_later(2, "b", lambda: ran.append("b"))
    timers.cancel("a")
    clock.now = 2
    assert timers.run_due() == 1
    assert ran == ["b"]


def test_a_failing_timer_is_logged_with_its_key(caplog: pytest.LogCaptureFixture) -> None:
    timers = Timers(Clock())
    timers.call_later(0, "gate", lambda: 1 / 0)
    timers.run_due()
    assert [r.getMessage() for r in caplog.records if r.name == "agent.core.timers"] == [
        "timer for gate failed"
    ]


# -- topics ----------------------------------------------------------------------------------


def test_every_inbound_topic_has_its_kind_and_nothing_else_has_one() -> None:
    with_ha = Topics("sipagent/porch", (), "sipagent/group", "homeassistant")
    assert with_ha.kind("homeassistant/status") == "ha_status"
    assert with_ha.kind("sipagent/porch/output/gate/get") is None
    t = Topics("sipagent/porch", ("all",), "sipagent/group", "")
    kinds = {
        "/status": None,
        "sipagent/porch/presence/status/set": "presence_status_set",
        "sipagent/porch/presence/note/set": "presence_note_set",
        "homeassistant/status": None,  # discovery is off: Home Assistant's birth means nothing
        "sipagent/porch/output/gate/get": None,
        "other/output/gate/set": None,
    }
    assert {topic: t.kind(topic) for topic in kinds} == kinds


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.999, "999ms"), (0.0015, "2ms"), (1.0, "1s"), (1.5, "1.5s"), (10.0, "10s"), (100, "100s")],
)
def test_durations_print_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_plain_number_is_seconds() -> None:
    assert parse_duration("2") == 2.0 and parse_duration("2S") == 2.0


# -- untrusted text ---------------------------------------------------------------------------


def test_an_excerpt_keeps_text_of_exactly_the_limit_whole() -> None:
    assert excerpt("x" * 10, 10) == "x" * 10
    assert excerpt("x" * 11, 10) == "x" * 9 + "…"
    # Cut at four times the limit before white space is folded: a long run of it may end
    # an excerpt early (and say so), never make it long.
    assert excerpt("a" + " " * 45 + "b", 10) == "a…"
    assert excerpt("a" + " " * 38 + "b", 10) == "a b"


def test_check_text_names_each_kind_of_bad_character() -> None:
    for text, reason in [
        ("a\udfffb", "the note is not UTF-8 text"),
        ("a\x07\tb", "the note contains a control character (U+0007)"),
        ("tab\tthen\x1b", "the note contains a control character (U+0009)"),
    ]:
        with pytest.raises(BadText) as err:
            check_text(text, "the note")
        assert str(err.value) == reason
    check_text("X marks", "the note")  # nothing is allowed by default, and X is no control
    with pytest.raises(BadText, match=r"U\+001B"):
        check_text("tab\tthen\x1b", "the note", allowed_controls="\t")


# -- TOTP secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key_bytes"),
    [
        ("JBSWY3DPEHPK3PXP", 10),  # 10 bytes: the least accepted
        ("JBSWY3DPEHPK3PXP==", 10),  # padding written (wrongly): forgiven
        ("jbsw-y3dp ehpk-3pxx", 10),  # ends in X, lower case, dashes and spaces
    ],
)
def test_secrets_as_people_type_them(text: str, key_bytes: int) -> None:
    assert len(decode_secret(text)) == key_bytes


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (" - ", "empty TOTP secret"),
        ("GEZDGNBVGY3TQ", "TOTP secret too short (8 bytes; use at least 10, e.g. 20)"),
    ],
)
def test_secrets_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidSecret) as err:
        decode_secret(text)
    assert str(err.value) == reason


# -- the rate limit ---------------------------------------------------------------------------


def test_an_allowed_command_has_no_wait_and_no_refusal_streak() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=Clock())
    verdict_ = limiter.take("a")
    assert (verdict_.allowed, verdict_.first_refusal, verdict_.retry_after_s) == (True, False, 0.0)
    refused = limiter.take("a")
    assert (refused.allowed, refused.first_refusal, refused.retry_after_s) == (False, True, 1.0)


def test_a_zero_rate_never_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=0, burst=1, clock=clock)
    limiter.take("a")
    clock.now += 10**6
    refused = limiter.take("a")
    assert not refused.allowed and refused.retry_after_s == float("inf")


def test_the_least_recently_seen_sender_is_forgotten_first() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=1, burst=1, clock=clock)
    limiter.take("owner")  # spent
    for i in range(MAX_STRANGERS - 1):
        limiter.take(f"sip:forged{i}@x")
    limiter.take("owner")  # seen again: now the most recent (and still refused)
    limiter.take("sip:one-more@x")  # the table is full: the oldest forged sender goes
    assert limiter.take("owner").allowed is False
    assert limiter.take("sip:forged0@x").allowed is True  # forgotten: a fresh bucket


# -- presence -----------------------------------------------------------------------------


def test_template_fields_past_plain_text_and_with_dashes_and_underscores() -> None:
    from agent.core.presence import template_fields

    assert template_fields("{{literal}} braces, then {x}") == ["x"]
    assert template_fields("door {front_door}, {back-gate} and {x}") == [
        "front_door",
        "back-gate",
        "x",
    ]
    for bad in ("{door!r}", "{door:>5}", "{0}", "{a.b}", "{}", "{a b}"):
        with pytest.raises(ValueError, match="is not a plain"):
            template_fields(bad)


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("&#1;", "\x01"),
        ("&#x10FFFF;", "\U0010ffff"),
        ("&#x110000;", "&#x110000;"),  # past Unicode: left as written
        ("&#xD7FF;&#xE000;", "\ud7ff\ue000"),
        ("&#xD800;&#xDFFF;", "&#xD800;&#xDFFF;"),  # surrogates are no characters
        ("&#0;", "&#0;"),
    ],
)
def test_xml_character_references_at_the_edges_of_unicode(text: str, read: str) -> None:
    from agent.core.presence import from_xml_text

    assert from_xml_text(text) == read


def test_presence_requests_refused_with_the_reason() -> None:
    from agent.core.presence import PresenceError, normalize_status, parse_request

    cases = {
        "": "empty presence (use one of: available, away, busy, dnd, offline)",
        '{"note": "x"}': 'JSON presence needs a "status" string',
        '{"status": "busy", "note": 5}': '"note" must be a string',
    }
    for text, reason in cases.items():
        with pytest.raises(PresenceError) as err:
            parse_request(text)
        assert str(err.value) == reason
    with pytest.raises(PresenceError) as err:
        normalize_status("s" * 45)
    assert str(err.value) == (
        f"unknown status '{'s' * 39}…' (use one of: available, away, busy, dnd, offline)"
    )


def test_fresh_schedules_have_nothing_due() -> None:
    from agent.core.registration import Backoff, Keeper

    keeper = Keeper(Backoff(2, 60), check_s=60)
    assert (keeper.due(10**6), keeper.retry_pending()) == (None, False)
    choice = BrokerChoice((Broker("a", 1), Broker("b", 2)), failback_s=300, clock=Clock())
    assert choice.failback_in() is None
