"""Hostile SIP, direct mode: floods of every method, INVITE bursts, amplification.

Each test attacks an agent on loopback with a raw SIP client (lab/rawsip.py), bounded in
count, and ends with the soundness property (lab/soundness.py): alive, `status` answered,
no output moved, every MESSAGE answered 200 on MQTT.
"""

from __future__ import annotations

import time

from lab.configs import DOOR_CONFIG
from lab.hostile import Target, open_sockets, token
from lab.rawsip import SDP, UdpPeer, request
from lab.waiting import wait_until

# The default sip.limits.stranger_answers_per_s: a burst of 10, then 5 a second.
STRANGER_BURST, STRANGER_RATE = 10, 5


def _budget(started: float) -> float:
    """How many answers strangers may have had since `started` (whatever the machine's load)."""
    return STRANGER_BURST + STRANGER_RATE * (time.monotonic() - started + 1)


def _invite(target: Target, peer: UdpPeer, i: int, **kwargs: object) -> bytes:
    return request(
        "INVITE",
        target.uri,
        local=peer.address,
        sender=f"sip:stranger{i}@198.51.100.{i % 250}",
        body=SDP,
        content_type="application/sdp",
        **kwargs,  # type: ignore[arg-type]
    )


def test_an_invite_burst_over_udp_opens_nothing_and_the_agent_stays_sound(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id)
    sockets = open_sockets(target.agent.proc.pid)
    target.sound.begin()
    attacker = UdpPeer()
    started = time.monotonic()
    for i in range(100):  # distinct strangers, back to back, never an ACK
        attacker.send(_invite(target, attacker, i), target.address)
    target.sound.check()  # the owner's status queues behind the whole burst
    answers = [r for r in attacker.snapshot() if not r.is_request]
    assert answers and {r.status for r in answers} == {603}
    assert len(answers) <= _budget(started)
    assert open_sockets(target.agent.proc.pid) == sockets  # no media socket, ever
    log = target.agent.log.read_text()  # pjsip's debug lines are in it (log.level = "debug")
    assert "RTP socket" not in log and "Assertion" not in log


def test_an_invite_burst_over_tcp_leaves_the_agent_sound(
    agent_factory, probe_factory, mosquitto, device_id
):
    from lab.rawsip import TcpPeer

    target = Target.start(agent_factory, probe_factory, mosquitto, device_id, transport="tcp")
    sockets = open_sockets(target.agent.proc.pid)
    target.sound.begin()
    for c in range(10):  # ten strangers' connections (their own addresses), ten calls each
        conn = TcpPeer(target.address, host=f"127.0.2.{c + 1}")
        for i in range(10):
            raw = request(
                "INVITE", target.uri, local=conn.address, proto="TCP",
                sender=f"sip:stranger{c}x{i}@198.51.100.1", body=SDP,
                content_type="application/sdp",
            )  # fmt: skip
            conn.send(raw)
        conn.close()
    target.sound.check()
    assert open_sockets(target.agent.proc.pid) == sockets  # no media socket, ever


def test_an_allowed_callers_retransmitted_invite_runs_the_call_action_once(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(
        agent_factory, probe_factory, mosquitto, device_id,
        extra='[calls]\naction = "pulse gate 200ms"\n',
    )  # fmt: skip
    gate_pin = 18
    before = len(target.agent.pin_history(gate_pin))
    caller = UdpPeer()
    raw = request(
        "INVITE", target.uri, local=caller.address, sender="sip:owner@127.0.0.1",
        body=SDP, content_type="application/sdp",
    )  # fmt: skip
    for _ in range(3):  # the caller did not hear the answer: the same INVITE again
        caller.send(raw, target.address)
    wait_until(lambda: len([r for r in caller.snapshot() if r.status == 603]) == 3, 10, "3 x 603")
    wait_until(lambda: len(target.agent.pin_history(gate_pin)) >= before + 2, 10, "one pulse")
    assert [level for _, level in target.agent.pin_history(gate_pin)[before:]] == [1.0, 0.0]


def test_a_message_flood_from_strangers_is_all_relayed_and_few_are_answered(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id)
    target.sound.begin()
    attacker = UdpPeer()
    started = time.monotonic()
    sent = {}
    for i in range(300):
        mark = token()
        raw = request(
            "MESSAGE", target.uri, local=attacker.address, body=f"{mark} on gate",
            content_type="text/plain", sender=f"sip:s{i}@198.51.100.7", call_id=mark,
        )  # fmt: skip
        attacker.send(raw, target.address)
        sent[mark] = raw
    target.sound.check()
    accepted = {m for m in sent if any(r.status == 200 for r in attacker.responses(m))}
    assert accepted, "no MESSAGE was answered 200"
    target.sound.check(accepted=accepted)
    replies = attacker.requests("MESSAGE")  # `error: forbidden`, to strangers
    assert len({r.header("Call-ID") for r in replies}) <= _budget(started)
    # "<mark> on gate" is no command: in direct mode a stranger hears the same error as anyone.
    assert all(r.body.startswith("error: unknown command") for r in replies), {
        r.body for r in replies
    }


METHODS = ["OPTIONS", "REGISTER", "NOTIFY", "BYE", "CANCEL", "ACK", "PUBLISH", "PRACK"]
METHODS += ["UPDATE", "INFO", "REFER", "FOO"]


def test_a_flood_of_every_other_method_gets_few_answers(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id, presence="serve")
    target.sound.begin()
    attacker = UdpPeer()
    started = time.monotonic()
    for _i in range(50):
        for method in METHODS:
            attacker.send(request(method, target.uri, local=attacker.address), target.address)
        raw = request("SUBSCRIBE", target.uri, local=attacker.address, extra=["Event: presence"])
        attacker.send(raw, target.address)
    target.sound.check()
    answers = [r for r in attacker.snapshot() if not r.is_request]
    assert len(answers) <= _budget(started)  # OPTIONS, SUBSCRIBE and the rest share it
    assert not attacker.requests("NOTIFY")  # no stranger became a watcher


def test_replies_go_to_the_source_never_to_a_contact_elsewhere(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id)
    target.sound.begin()
    attacker, victim = UdpPeer("127.0.0.2"), UdpPeer("127.0.0.3", answer=False)
    contact = f"<sip:v@{victim.address[0]}:{victim.address[1]}>"
    marks = [token() for _ in range(5)]
    for mark in marks:
        for sender in ("sip:owner@127.0.0.1", "sip:eve@127.0.0.1"):  # forged owner, stranger
            raw = request(
                "MESSAGE", target.uri, local=attacker.address, sender=sender,
                body=f"{mark} status", content_type="text/plain",
                headers={"Contact": contact},
            )  # fmt: skip
            attacker.send(raw, target.address)
    target.sound.check(accepted=marks)
    wait_until(lambda: len(attacker.requests("MESSAGE")) >= 10, 10, "the replies, at the source")
    assert victim.snapshot() == []


def test_forged_watchers_are_bounded_and_notifies_stay_with_the_sender(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(
        agent_factory, probe_factory, mosquitto, device_id, presence="serve",
        extra=DOOR_CONFIG, limits="watchers_per_sender = 8",
    )  # fmt: skip
    target.sound.begin()
    attacker, victim = UdpPeer("127.0.0.2"), UdpPeer("127.0.0.3", answer=False)
    elsewhere = f"<sip:v@{victim.address[0]}:{victim.address[1]}>"
    for i in range(1000):  # the owner's From, forged (direct mode believes it)
        contact = elsewhere if i % 2 else None  # half of them point the NOTIFYs elsewhere
        raw = request(
            "SUBSCRIBE", target.uri, local=attacker.address, sender="sip:owner@127.0.0.1",
            extra=["Event: presence", "Expires: 600"],
            headers={"Contact": contact} if contact else None,
        )  # fmt: skip
        attacker.send(raw, target.address)
    target.sound.check()
    accepted = [r for r in attacker.snapshot() if r.status == 200]
    assert 0 < len(accepted) <= 8
    initial = len(attacker.requests("NOTIFY"))
    target.agent.drive(27, False)  # the door opens: every watcher is told
    wait_until(lambda: len(attacker.requests("NOTIFY")) >= initial + len(accepted), 10, "NOTIFYs")
    target.sound.check()
    notifies = {(r.header("Call-ID"), r.header("CSeq")) for r in attacker.requests("NOTIFY")}
    assert len(notifies) <= 2 * 8  # each watcher: its first NOTIFY, then the door's
    assert victim.snapshot() == []
