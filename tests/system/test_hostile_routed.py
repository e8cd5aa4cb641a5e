"""Routed mode: the agent registered through Kamailio takes requests only from Kamailio.

Kamailio (the lab's authenticating proxy) listens on 127.0.0.1; the attacker sends from
127.0.0.2, straight to the agent's port, with the owner's From. Before, the agent obeyed.
"""

from __future__ import annotations

import socket

import pytest

from lab.configs import agent_toml
from lab.hostile import token
from lab.ports import free_port
from lab.rawsip import SDP, UdpPeer, request
from lab.soundness import STATUS_DEADLINE_S, Soundness

LAMP = 17


def _routed(kamailio, agent_factory, probe_factory, mosquitto, device_id, transport):  # type: ignore[no-untyped-def]
    port = free_port()
    base = f"sipagent/{device_id}"
    probe = probe_factory(f"{base}/#")
    agent = agent_factory(
        agent_toml(
            kamailio, transport=transport, listen=f"127.0.0.1:{port}", mosquitto=mosquitto,
            device_id=device_id, presence="serve",
        )
    )  # fmt: skip
    agent.wait_ready()  # registered through Kamailio
    return agent, ("127.0.0.1", port), probe, base


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_forged_from_sent_straight_to_the_agent_is_not_taken(
    kamailio, agent_factory, peer_factory, probe_factory, mosquitto, device_id, transport
):
    agent, address, probe, base = _routed(
        kamailio, agent_factory, probe_factory, mosquitto, device_id, transport
    )
    owner = peer_factory("owner")
    to = kamailio.aor("agent")

    def status(timeout: float) -> str:
        owner.send(to, "status", timeout=timeout)
        return str(owner.wait_message(timeout=timeout)["body"])

    sound = Soundness(agent, status, probe=probe, base_topic=base)
    sound.begin()
    target = f"sip:agent@{address[0]}:{address[1]}"
    forged = kamailio.aor("owner")
    mark = token()
    if transport == "tcp":
        # The listener's kernel filter takes connections from Kamailio's address only.
        with socket.socket() as sock, pytest.raises(OSError):
            sock.bind(("127.0.0.2", 0))
            sock.settimeout(1.5)
            sock.connect(address)
    attacker = UdpPeer("127.0.0.2")
    if transport == "udp":
        for raw in (
            request("MESSAGE", target, local=attacker.address, sender=forged,
                    body=f"{mark} on lamp", content_type="text/plain"),
            request("MESSAGE", target, local=attacker.address, sender=forged, body="on lamp",
                    content_type="text/plain"),
            request("INVITE", target, local=attacker.address, sender=forged, body=SDP,
                    content_type="application/sdp"),
            request("SUBSCRIBE", target, local=attacker.address, sender=forged,
                    extra=["Event: presence"]),
            request("OPTIONS", target, local=attacker.address),
        ):  # fmt: skip
            attacker.send(raw, address)
    sound.check()  # the owner, through Kamailio, is answered; the lamp never moved
    assert attacker.snapshot() == [], "a request not from the proxy was answered"
    records = [m.json() for m in probe.messages(f"{base}/message/in")]
    assert not [r for r in records if mark in r["body"] or r["body"] == "on lamp"]
    if transport == "udp":
        assert "routed mode takes requests only from the proxy" in agent.log.read_text()
    owner.send(to, "on lamp", timeout=STATUS_DEADLINE_S)  # the real owner still can
    assert owner.wait_message()["body"] == "ok: lamp on"
    assert agent.pin(LAMP)
