"""The request gate's decisions (agent.core.gate), request by request, with a fake clock."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from agent.config.load import parse_config
from agent.config.model import SipConfig, SipLimitsConfig
from agent.core.budget import TokenBucket
from agent.core.counters import Counters
from agent.core.gate import DROP, PASS, Arrival, GatePolicy, answer
from agent.core.trust import Trust
from lab.fakes import Clock

DIRECT = parse_config(
    '[device]\nid = "t"\n[sip]\nuri = "sip:agent@192.0.2.1"\npresence = "serve"\n'
).sip
ROUTED = replace(DIRECT, registrar="sip:192.0.2.50", accept_from="proxy")
PROXY, STRANGER, OWNER_IP = "192.0.2.50", "203.0.113.66", "192.0.2.9"
OWNER = "sip:owner@example.org"


def request(
    method: str,
    *,
    sender: str = "sip:eve@example.org",
    contact: str | None = "<sip:x@192.0.2.9:5062>",
    to_tag: str | None = None,
    call_id: str | None = None,
    extra: str = "",
    via: str = "SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1;rport",
) -> bytes:
    to = "<sip:agent@192.0.2.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:agent@192.0.2.1 SIP/2.0",
        f"Via: {via}",
        f"From: <{sender}>;tag=f1",
        f"To: {to}",
        f"Call-ID: {call_id or secrets.token_hex(6)}",
        f"CSeq: 1 {method}",
        *([f"Contact: {contact}"] if contact else []),
        *([line for line in extra.split("|") if line]),
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Rig:
    def __init__(self, config: SipConfig = DIRECT, **limits: int) -> None:
        self.clock = Clock(1000.0)
        self.counters = Counters()
        config = replace(config, limits=replace(SipLimitsConfig(), **limits))
        trust = Trust([PROXY] if config.registrar else [])
        strangers = TokenBucket(config.limits.stranger_answers_per_s, clock=self.clock)
        self.policy = GatePolicy(config, self.counters, trust, strangers, self.clock)
        self.calls: list[tuple[str, str]] = []
        self.policy.known = lambda uri: OWNER in uri
        self.policy.on_call = lambda caller, source: self.calls.append((caller, source)) or 603
        self.policy.may_watch = lambda uri: (200, "OK") if OWNER in uri else (403, "Forbidden")

    def __call__(self, raw: bytes, source: str = OWNER_IP, method: str | None = None):  # type: ignore[no-untyped-def]
        method = method or raw.split(b" ", 1)[0].decode()
        return self.policy.decide(Arrival(method, source, 5062, raw))


def test_message_passes_from_anyone_in_direct_mode() -> None:
    rig = Rig()
    assert rig(request("MESSAGE"), STRANGER) == PASS


def test_a_via_maddr_is_dropped_whatever_the_method() -> None:
    rig = Rig()
    via = "SIP/2.0/UDP 192.0.2.9;maddr=doesnotexist.example;branch=z9hG4bK2"
    for method in ("MESSAGE", "OPTIONS", "INVITE"):
        assert rig(request(method, via=via)) == DROP
    assert rig.counters.get("sip.message.maddr.dropped") == 1
    assert rig.calls == []
    # a maddr further down (a proxy's Via) is not ours to answer to
    assert (
        rig(request("MESSAGE", via="SIP/2.0/UDP a;branch=z9hG4bK3, SIP/2.0/UDP b;maddr=c")) == PASS
    )


def test_ack_is_dropped_quietly() -> None:
    rig = Rig()
    assert rig(request("ACK")) == DROP
    assert rig.counters.snapshot() == {}


def test_an_invite_is_answered_by_the_gate_once_per_call_with_the_action_run_once() -> None:
    rig = Rig()
    raw = request("INVITE", sender=OWNER, call_id="call-1")
    assert rig(raw) == answer(603)
    assert rig(raw) == answer(603)  # a retransmission: same answer, no second action
    assert rig.calls == [(f"<{OWNER}>;tag=f1", f"{OWNER_IP}:5062")]
    assert rig(request("INVITE", to_tag="x")) == answer(481)  # no dialog ever exists


def test_invites_from_strangers_are_answered_within_the_budget_then_dropped() -> None:
    rig = Rig(stranger_answers_per_s=5)
    verdicts = [rig(request("INVITE"), STRANGER) for _ in range(30)]
    assert verdicts.count(answer(603)) == 10  # a burst of twice the rate
    assert verdicts.count(DROP) == 20
    assert rig.counters.get("sip.invite.dropped") == 20
    assert rig(request("INVITE", sender=OWNER)) == answer(603)  # known callers still get in
    rig.clock.now += 1.0
    assert rig(request("INVITE"), STRANGER) == answer(603)  # the budget refills


@pytest.mark.parametrize(
    ("sender", "contact", "extra", "verdict"),
    [
        (OWNER, "<sip:x@192.0.2.9:5062>", "Event: presence", PASS),
        ("sip:eve@example.org", "<sip:x@192.0.2.9>", "Event: presence", answer(403, "Forbidden")),
        (OWNER, "<sip:x@192.0.2.9>", "Event: message-summary", answer(489, "Bad Event")),
        (OWNER, "<sip:x@192.0.2.9>", "", answer(489, "Bad Event")),
        (
            OWNER,
            "<sip:v@doesnotexist.example>",
            "Event: presence",
            answer(400, "Contact must be an IP address"),
        ),
        (OWNER, None, "Event: presence", answer(400, "Contact must be an IP address")),
        (
            OWNER,
            "<sip:x@198.51.100.7:5062>",
            "Event: presence",
            answer(400, "Contact must be the address the SUBSCRIBE came from"),
        ),
        (
            OWNER,
            "<sip:x@192.0.2.9>",
            "Event: presence|Record-Route: <sip:192.0.2.9;lr>",
            answer(400, "Record-Route is not taken in direct mode"),
        ),
    ],
)
def test_subscribe_in_direct_mode(
    sender: str, contact: str | None, extra: str, verdict: object
) -> None:
    rig = Rig()
    assert rig(request("SUBSCRIBE", sender=sender, contact=contact, extra=extra)) == verdict


def test_watchers_are_bounded_per_sender_and_in_total_and_freed_by_unsubscribing() -> None:
    rig = Rig(watchers=3, watchers_per_sender=2)
    sub = [
        request("SUBSCRIBE", sender=OWNER, extra="Event: presence", call_id=f"s{i}")
        for i in range(3)
    ]
    assert [rig(s) for s in sub] == [
        PASS,
        PASS,
        answer(403, f"too many subscriptions from {OWNER} (sip.limits.watchers_per_sender)"),
    ]
    assert rig(sub[0]) == PASS  # the first again (a retransmission) is already counted
    other = "sip:owner@example.org;x"  # still the owner's address of record
    assert rig(request("SUBSCRIBE", sender=other, extra="Event: presence")) != PASS
    rig.policy.may_watch = lambda uri: (200, "OK")
    assert rig(request("SUBSCRIBE", sender="sip:bob@x", extra="Event: presence")) == PASS
    assert rig(request("SUBSCRIBE", sender="sip:carol@x", extra="Event: presence")) == answer(
        403, "too many watchers (sip.limits.watchers)"
    )
    unsubscribe = request(
        "SUBSCRIBE", sender=OWNER, to_tag="t", call_id="s0", extra="Event: presence|Expires: 0"
    )
    assert rig(unsubscribe) == PASS
    assert rig(request("SUBSCRIBE", sender="sip:carol@x", extra="Event: presence")) == PASS
    assert rig.counters.get("sip.subscribe.over_limit.refused") == 3


def test_a_watcher_that_is_not_refreshed_is_forgotten_when_it_expires() -> None:
    rig = Rig(watchers_per_sender=1)
    first = request("SUBSCRIBE", sender=OWNER, extra="Event: presence|Expires: 60")
    assert rig(first) == PASS
    assert rig(request("SUBSCRIBE", sender=OWNER, extra="Event: presence")) != PASS
    rig.clock.now += 61
    assert rig(request("SUBSCRIBE", sender=OWNER, extra="Event: presence")) == PASS


def test_a_one_time_fetch_takes_no_slot() -> None:
    rig = Rig(watchers_per_sender=1)
    fetch = request("SUBSCRIBE", sender=OWNER, extra="Event: presence|Expires: 0")
    assert [rig(fetch) for _ in range(3)] == [PASS] * 3
    assert rig.policy.watchers.count() == 0


def test_subscribes_over_their_rate_are_dropped() -> None:
    rig = Rig(subscribe_per_s=2, watchers_per_sender=100)
    verdicts = [rig(request("SUBSCRIBE", sender=OWNER, extra="Event: presence")) for _ in range(6)]
    assert verdicts == [PASS] * 4 + [DROP] * 2
    assert rig.counters.get("sip.subscribe.rate.dropped") == 2


def test_other_requests_from_strangers_share_the_budget_but_dialogs_do_not() -> None:
    rig = Rig(stranger_answers_per_s=1)
    verdicts = [rig(request("OPTIONS"), STRANGER) for _ in range(4)]
    assert verdicts == [PASS, PASS, DROP, DROP]
    assert rig(request("BYE", to_tag="t"), STRANGER) == PASS  # pjsua finds it or says 481
    assert rig(request("NOTIFY", to_tag="t"), STRANGER) == PASS  # a watched contact's
    assert rig(b"\x00\x01garbage", STRANGER, method="FOO") == DROP
    assert rig.counters.get("sip.options.stranger_budget.dropped") == 2
    assert rig(request("FROB"), STRANGER) == DROP
    assert rig.counters.get("sip.other.stranger_budget.dropped") == 1


def test_routed_mode_takes_requests_only_from_the_proxy() -> None:
    rig = Rig(ROUTED, stranger_answers_per_s=0)
    for method in ("MESSAGE", "INVITE", "SUBSCRIBE", "OPTIONS", "NOTIFY"):
        assert rig(request(method, sender=OWNER), STRANGER) == DROP
    assert rig.counters.get("sip.request.not_from_proxy.dropped") == 5
    assert rig(request("MESSAGE", sender=OWNER), PROXY) == PASS
    assert rig(request("OPTIONS"), PROXY) == PASS  # the proxy's keep-alive pings: no budget
    assert rig.calls == []


def test_routed_mode_takes_the_learned_proxy_address_too() -> None:
    rig = Rig(ROUTED)
    assert rig(request("MESSAGE"), "198.51.100.20") == DROP
    rig.policy.trust.learn("198.51.100.20")
    assert rig(request("MESSAGE"), "198.51.100.20") == PASS


def test_routed_subscribe_may_record_route_but_only_through_addresses() -> None:
    rig = Rig(ROUTED)
    ok = "Event: presence|Record-Route: <sip:192.0.2.50;lr>"
    assert (
        rig(request("SUBSCRIBE", sender=OWNER, contact="<sip:o@198.51.100.7>", extra=ok), PROXY)
        == PASS
    )
    named = "Event: presence|Record-Route: <sip:proxy.example.org;lr>"
    assert rig(request("SUBSCRIBE", sender=OWNER, extra=named), PROXY) == answer(
        400, "Record-Route must name an IP address"
    )


def test_routed_mode_may_take_requests_from_anyone_when_told() -> None:
    rig = Rig(replace(ROUTED, accept_from="anyone"))
    assert rig(request("MESSAGE"), STRANGER) == PASS


def test_a_failing_hook_is_the_adapters_to_catch() -> None:
    rig = Rig()

    def boom(caller: str, source: str) -> int:
        raise RuntimeError("boom")

    rig.policy.on_call = boom
    with pytest.raises(RuntimeError):
        rig(request("INVITE", sender=OWNER))


# -- edges (scripts/mutation.py): counters, bounds and defaults as the README gives them ------


def test_before_the_agent_sets_its_hooks_calls_and_watchers_are_refused() -> None:
    clock = Clock(0.0)
    policy = GatePolicy(DIRECT, Counters(), Trust([]), TokenBucket(5.0, clock=clock), clock)
    invite = Arrival("INVITE", OWNER_IP, 5062, request("INVITE", sender=OWNER))
    assert policy.decide(invite) == answer(603)
    subscribe = request("SUBSCRIBE", sender=OWNER, extra="Event: presence")
    assert policy.decide(Arrival("SUBSCRIBE", OWNER_IP, 5062, subscribe)) == answer(
        403, "Forbidden"
    )


def test_each_refusal_is_counted_by_its_name() -> None:
    rig = Rig()
    rig(request("INVITE", sender=OWNER))
    assert rig.counters.get("sip.invite.refused") == 1
    rig(request("SUBSCRIBE", extra="Event: presence"))
    assert rig.counters.get("sip.subscribe.refused") == 1
    rig(request("SUBSCRIBE", sender=OWNER, contact="<sip:v@name.example>", extra="Event: presence"))
    assert rig.counters.get("sip.subscribe.contact.refused") == 1
    assert rig(b"OPTIONS garbage\r\n\r\n") == DROP
    assert rig.counters.get("sip.other.unreadable.dropped") == 1


def test_an_unreadable_request_that_mentions_maddr_is_dropped_as_maddr() -> None:
    rig = Rig()
    assert rig(b"OPTIONS maddr=x\r\n\r\n", method="OPTIONS") == DROP
    assert rig.counters.get("sip.options.maddr.dropped") == 1


def test_maddr_outside_the_via_is_no_reason_to_drop() -> None:
    rig = Rig()
    raw = request("MESSAGE", sender="sip:maddr=x@example.org")
    assert rig(raw) == PASS
    assert rig.counters.snapshot() == {}


@pytest.mark.parametrize("event", ["Presence", "presence;id=7", " presence ; id=7"])
def test_the_event_package_is_read_without_case_or_parameters(event: str) -> None:
    rig = Rig()
    assert rig(request("SUBSCRIBE", sender=OWNER, extra=f"Event: {event}")) == PASS


def test_a_watcher_the_agent_answers_with_a_redirect_is_refused_with_it() -> None:
    rig = Rig()
    rig.policy.may_watch = lambda uri: (300, "Multiple Choices")
    raw = request("SUBSCRIBE", sender=OWNER, extra="Event: presence")
    assert rig(raw) == answer(300, "Multiple Choices")
    assert rig.counters.get("sip.subscribe.refused") == 1


def test_a_subscribe_for_one_second_takes_a_slot() -> None:
    rig = Rig(watchers_per_sender=1)
    first = request("SUBSCRIBE", sender=OWNER, extra="Event: presence|Expires: 1")
    assert rig(first) == PASS
    second = request("SUBSCRIBE", sender=OWNER, extra="Event: presence|Expires: 60")
    assert rig(second).action == "answer"
    assert rig.counters.get("sip.subscribe.over_limit.refused") == 1


def test_an_ipv6_contact_from_its_own_address_is_taken() -> None:
    rig = Rig()
    raw = request(
        "SUBSCRIBE", sender=OWNER, contact="<sip:x@[2001:db8::9]>", extra="Event: presence"
    )
    assert rig(raw, "2001:db8::9") == PASS


@pytest.mark.parametrize(
    ("method", "extra", "counter"),
    [
        ("INVITE", "", "sip.invite.stranger_budget.dropped"),  # inside a dialog: 481
        ("SUBSCRIBE", "Event: dialog", "sip.subscribe.stranger_budget.dropped"),
        ("SUBSCRIBE", "Event: presence", "sip.subscribe.stranger_budget.dropped"),
    ],
)
def test_answers_to_strangers_past_the_budget_are_dropped_and_counted(
    method: str, extra: str, counter: str
) -> None:
    rig = Rig(stranger_answers_per_s=1)
    tag = "t1" if method == "INVITE" else None
    verdicts = [
        rig(request(method, to_tag=tag, extra=extra), STRANGER) for _ in range(3)
    ]  # a burst of two, then none
    assert verdicts[2] == DROP and verdicts[0] != DROP
    assert rig.counters.get(counter) == 1


def test_a_call_is_remembered_for_32_seconds_then_is_a_new_call() -> None:
    rig = Rig()
    raw = request("INVITE", sender=OWNER, call_id="c-32")
    rig(raw)
    rig.clock.now += 31.9
    rig(raw)
    assert len(rig.calls) == 1
    rig.clock.now += 0.1  # 32 s after the first
    rig(raw)
    assert len(rig.calls) == 2


def test_the_last_256_calls_are_remembered_and_the_oldest_forgotten_first() -> None:
    rig = Rig()
    calls = [request("INVITE", sender=OWNER, call_id=f"c{i}") for i in range(257)]
    for raw in calls[:256]:
        rig(raw)
    rig(calls[0])  # all 256 remembered: a retransmission
    assert len(rig.calls) == 256
    rig(calls[256])  # the 257th pushes out the oldest
    rig(calls[1])
    assert len(rig.calls) == 257
    rig(calls[0])
    assert len(rig.calls) == 258


def test_messages_from_strangers_pass_whatever_their_number() -> None:
    rig = Rig(stranger_answers_per_s=1)
    assert all(rig(request("MESSAGE"), STRANGER) == PASS for _ in range(20))


def test_the_event_package_is_what_comes_before_the_first_parameter() -> None:
    rig = Rig()
    raw = request("SUBSCRIBE", sender=OWNER, extra="Event: presence;id=1;x=2")
    assert rig(raw) == PASS


def test_subscribes_refill_at_their_rate_on_the_gates_clock() -> None:
    rig = Rig(subscribe_per_s=1)
    verdicts = [rig(request("SUBSCRIBE", sender=OWNER, extra="Event: presence")) for _ in range(3)]
    assert verdicts[2] == DROP
    rig.clock.now += 1.0
    assert rig(request("SUBSCRIBE", sender=OWNER, extra="Event: presence")) == PASS


def test_an_answer_without_a_reason_leaves_the_phrase_to_the_stack() -> None:
    assert answer(603).reason == ""


def test_forgetting_an_old_call_keeps_the_newer_ones() -> None:
    rig = Rig()
    old, new = (request("INVITE", sender=OWNER, call_id=c) for c in ("old", "new"))
    rig(old)
    rig.clock.now += 31.0
    rig(new)
    rig.clock.now += 1.5  # the old call is forgotten, the new one is not
    rig(new)
    assert len(rig.calls) == 2
