"""Hostile SIP, bad input: odd encodings, cut-short bodies, broken and oversized requests.

Every case ends with the soundness property (lab/soundness.py); what the agent answered 200
must be on MQTT, as what it is.
"""

from __future__ import annotations

from lab.hostile import Target, token
from lab.rawsip import TcpPeer, UdpPeer, request
from lab.waiting import wait_until

LAMP = 17


def _relayed(target: Target, mark: str) -> dict:
    found = target.probe.wait_for(
        f"{target.base_topic}/message/in", lambda m: mark in m.json()["body"], timeout=20
    )
    return found.json()


def test_bytes_that_are_not_utf8_in_from_to_and_body_are_replied_to_and_relayed(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id)
    target.sound.begin()
    owner = UdpPeer()
    mark = token()
    raw = request(
        "MESSAGE", target.uri, local=owner.address, body=b"on lamp",
        content_type="text/plain", call_id=mark,
        headers={
            "From": '"M@@ller" <sip:owner@127.0.0.1>;tag=1',
            "To": '"T@@r" <sip:agent@127.0.0.1>',
        },
    )  # fmt: skip
    # Latin-1, as an old phone writes it: not UTF-8.
    raw = raw.replace(b"M@@ller", b"M\xfcller").replace(b"T@@r", b"T\xfcr")
    owner.send(raw, target.address)
    reply = wait_until(lambda: next(iter(owner.requests()), None), 10, "the reply")
    assert reply.body == "ok: lamp on"
    assert target.agent.pin(LAMP)
    record = target.probe.wait_for(
        f"{target.base_topic}/message/in", lambda m: m.json()["body"] == "on lamp", timeout=20
    ).json()
    assert record["from"] == '"M\ufffdller" <sip:owner@127.0.0.1>'
    assert record["to"] == '"T\ufffdr" <sip:agent@127.0.0.1>'
    bad_body = token()
    owner.send(
        request("MESSAGE", target.uri, local=owner.address, content_type="text/plain",
                body=f"{bad_body} \xff".encode("latin-1")),
        target.address,
    )  # fmt: skip
    assert _relayed(target, bad_body)["body"] == f"{bad_body} \ufffd"
    target.sound.check(moved={LAMP})


def test_a_message_cut_short_over_udp_is_refused_and_relayed_as_cut(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id)
    target.sound.begin()
    owner = UdpPeer()
    # Whole, this would be `on lamp` (trailing blanks are ignored): cut, it must not run.
    mark = token()
    body = "on lamp" + " " * 5000
    owner.send(
        request("MESSAGE", target.uri, local=owner.address, sender="sip:owner@127.0.0.1",
                body=body, content_type="text/plain", call_id=mark),
        target.address,
    )  # fmt: skip
    reply = wait_until(lambda: next(iter(owner.requests()), None), 10, "the reply")
    assert reply.body.startswith("error: message cut short")
    record = target.probe.wait_for(
        f"{target.base_topic}/message/in", lambda m: m.json()["body"].startswith("on lamp"), 20
    ).json()
    assert record["truncated"] is True and record["authorized"] is False
    assert record["command"]["result"].startswith("error: message cut short")
    assert len(record["body"]) < len(body)
    target.sound.check()  # the lamp never moved


def test_a_message_too_long_for_tcp_is_not_taken_at_all(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id, transport="tcp")
    target.sound.begin()
    conn = TcpPeer(target.address, host="127.0.0.3")
    conn.send(
        request("MESSAGE", target.uri, local=conn.address, proto="TCP",
                sender="sip:owner@127.0.0.1", body="on lamp" + " " * 5000,
                content_type="text/plain"),
    )  # fmt: skip
    assert conn.read_response(timeout=2) is None  # pjsip drops it: 4000 bytes at most
    target.sound.check()
    assert "ok: lamp on" not in target.agent.log.read_text()


# Requests no client should send; each may get an answer or not, none may do harm. The
# MESSAGEs carry a token of their own in the body and as Call-ID, to find them on MQTT.
def _malformed(to: str, local: tuple[str, int]) -> list[tuple[bytes, str | None]]:
    def msg(why: str, *, tracked: bool = True, **kwargs: object) -> tuple[bytes, str | None]:
        mark = token()
        fields: dict = {"content_type": "text/plain", "call_id": mark, **kwargs}
        fields.setdefault("body", f"{mark} {why}")
        return request("MESSAGE", to, local=local, **fields), mark if tracked else None

    def raw(data: bytes) -> tuple[bytes, str | None]:
        return data, None

    return [
        raw(b""),
        raw(b"\r\n\r\n"),
        raw(b"\x00" * 64),
        raw(bytes(range(256)) * 4),
        raw(b"MESSAGE\r\n\r\n"),
        raw(b"MESSAGE sip:x SIP/2.0\r\n\r\n"),  # no headers at all
        msg("missing to", headers={"To": None}),
        msg("missing from", headers={"From": None}),
        msg("missing call-id", headers={"Call-ID": None}, tracked=False),
        msg("missing cseq", headers={"CSeq": None}),
        msg("missing via", headers={"Via": None}),
        msg("too long", content_length=99999),
        msg("negative", content_length=-5),
        msg("lies short", content_length=3, tracked=False),  # the body is what it says
        msg("word length", headers={"Content-Length": "lots"}),
        msg("huge header", extra=["X-Junk: " + "a" * 3500]),
        # Cut inside its headers over UDP: 200, relayed cut short with no body to find.
        msg("many headers", extra=[f"X-H{i}: {i}" for i in range(300)], tracked=False),
        msg("broken from", headers={"From": '"unterminated <sip:x@y'}),
        msg("folded", extra=["X-Fold: a", " b", "\tc"]),
        msg("bad uri", headers={"To": "<sip:@@@>"}),
        msg("utf16", content_type="text/plain; charset=utf-16"),
        msg("odd", body=token().encode() + "\ufeff\u202e\u0000".encode(), tracked=False),
        msg("crlf", headers={"Subject": "a\rb\nc"}),
        raw(request("INVITE", to, local=local, body="v=0\r\nm=x\r\n", content_type="x/sdp")),
        raw(request("INVITE", to, local=local, body="<xml/>", content_type="text/xml")),
        raw(request("SUBSCRIBE", to, local=local, extra=["Event: presence", "Expires: -1"])),
        raw(request("SUBSCRIBE", to, local=local, extra=["Event: presence", f"Expires: {9**12}"])),
    ]  # fmt: skip


def test_malformed_requests_over_udp_do_no_harm(agent_factory, probe_factory, mosquitto, device_id):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id, presence="serve")
    target.sound.begin()
    attacker = UdpPeer()
    cases = _malformed(target.uri, attacker.address)
    for raw, _mark in cases:
        attacker.send(raw, target.address)
    target.sound.check()
    accepted = {m for _, m in cases if m and any(r.status == 200 for r in attacker.responses(m))}
    assert accepted, "some of the odd MESSAGEs are still MESSAGEs pjsip takes"
    target.sound.check(accepted=accepted)  # every one answered 200 is on MQTT


def test_malformed_requests_over_tcp_and_one_byte_at_a_time_do_no_harm(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id, transport="tcp")
    target.sound.begin()
    accepted = set()
    for i, (raw, mark) in enumerate(_malformed(target.uri, ("127.0.0.4", 5060))):
        conn = TcpPeer(target.address, host=f"127.0.3.{i % 200 + 1}")
        conn.send(raw)
        answer = conn.read_response(timeout=0.5) if mark else None
        if answer is not None and answer.status == 200:
            accepted.add(mark)
        conn.close()
    slow = TcpPeer(target.address, host="127.0.0.5")
    whole = token()
    raw = request("MESSAGE", target.uri, local=slow.address, proto="TCP", body=whole,
                  content_type="text/plain")  # fmt: skip
    slow.send(raw, chunk=1, pause_s=0.002)  # one byte at a time
    answer = slow.read_response(timeout=10)
    assert answer is not None and answer.status == 200
    target.sound.check(accepted=accepted | {whole})
