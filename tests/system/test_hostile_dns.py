"""No name a stranger sent is ever looked up: against a DNS server that never answers.

The agent runs in a namespace whose resolver is a black hole (lab/blackhole.py): one lookup
there blocks the owner loop for 10 s. Every place a stranger can write a host name gets one
(Contact, Record-Route, Via sent-by and maddr, From, Route, the Request-URI), in MESSAGE,
INVITE, SUBSCRIBE and OPTIONS. Afterwards the owner's `status` is answered at once, and the
black hole was asked nothing.
"""

from __future__ import annotations

from agent.adapters import status_socket
from lab.agentproc import AgentProcess
from lab.blackhole import BlackholeDns
from lab.configs import agent_toml
from lab.rawsip import SDP, UdpPeer, request
from lab.soundness import DirectOwner, Soundness
from lab.waiting import wait_until

NAME = "v{}.blackhole.example"


def _attacks(to: str, local: tuple[str, int]) -> list[bytes]:
    """Requests with a host name in every place a sender writes one (numbered, to tell apart)."""
    n = iter(range(1000))

    def name() -> str:
        return NAME.format(next(n))

    out = []
    for sender in ("sip:eve@127.0.0.1", "sip:owner@127.0.0.1"):  # a stranger; a forged owner
        contact = {"Contact": f"<sip:x@{name()}:5060>"}
        out += [
            request("MESSAGE", to, local=local, sender=sender, body="status",
                    content_type="text/plain", headers=contact),
            request("MESSAGE", to, local=local, sender=f"sip:owner@{name()}", body="status",
                    content_type="text/plain"),
            request("MESSAGE", to, local=local, sender=sender, body="status",
                    content_type="text/plain",
                    headers={"Via": f"SIP/2.0/UDP {name()}:5060;branch=z9hG4bKv{next(n)}"}),
            request("MESSAGE", to, local=local, sender=sender, body="status",
                    content_type="text/plain",
                    headers={"Via": f"SIP/2.0/UDP 127.0.0.1:{local[1]};maddr={name()};"
                                    f"branch=z9hG4bKm{next(n)}"}),
            request("MESSAGE", f"sip:agent@{name()}", local=local, sender=sender, body="status",
                    content_type="text/plain", extra=[f"Route: <sip:{name()};lr>"]),
            request("INVITE", to, local=local, sender=sender, body=SDP,
                    content_type="application/sdp", headers=contact,
                    extra=[f"Record-Route: <sip:{name()};lr>"]),
            request("SUBSCRIBE", to, local=local, sender=sender, headers=contact,
                    extra=["Event: presence"]),
            request("SUBSCRIBE", to, local=local, sender=sender,
                    extra=["Event: presence", f"Record-Route: <sip:{name()};lr>"]),
            request("OPTIONS", to, local=local, sender=sender, headers=contact,
                    extra=[f"Record-Route: <sip:{name()};lr>"]),
        ]  # fmt: skip
    return out


def test_no_name_a_stranger_wrote_is_looked_up(tmp_path):
    with BlackholeDns() as dns:
        port = 5060
        config = agent_toml(
            listen=f"127.0.0.1:{port}", presence="serve", extra='[calls]\naction = "status"\n'
        )
        agent = AgentProcess(tmp_path / "agent", config, netns=dns.netns)
        try:
            agent.wait_ready()
            address = ("127.0.0.1", port)
            owner = DirectOwner(address, netns=dns.netns)
            sound = Soundness(agent, owner.status)
            sound.begin()
            attacker = UdpPeer(netns=dns.netns)
            for raw in _attacks(f"sip:agent@127.0.0.1:{port}", attacker.address):
                attacker.send(raw, address)
            sound.check()  # within 5 s: one lookup alone would have taken 10
            asked = [q for q in dns.queries() if "blackhole" in q]
            assert asked == [], f"looked up on the owner thread: {sorted(set(asked))}"
            assert attacker.snapshot(), "the attacker got no answer at all: nothing was tested"
            owner.close()
            attacker.close()
        finally:
            agent.close()


def test_names_the_owner_chose_are_looked_up_without_blocking_the_loop(tmp_path):
    """pjsip's own resolver (nameservers from the namespace's resolv.conf: the black hole)
    asks asynchronously: the owner loop answers while the lookups hang, and the registration
    says why it failed once pjsip gives up."""
    with BlackholeDns() as dns:
        config = agent_toml(listen="127.0.0.1:0").replace(
            'uri = "sip:agent@127.0.0.1"',
            'uri = "sip:agent@pbx.blackhole.example"\nregistrar = "sip:pbx.blackhole.example"\n'
            'password = "pw"',
        )
        agent = AgentProcess(tmp_path / "agent", config, netns=dns.netns)
        try:
            wait_until(lambda: "_sip._udp.pbx.blackhole.example" in dns.queries(), 15,
                       f"the SRV query; log:\n{agent.log_tail()}")  # fmt: skip
            # The socket opens just after the SIP stack starts (and asks its first query).
            wait_until(agent.status_socket.exists, 10, f"the socket; log:\n{agent.log_tail()}")
            for _ in range(3):  # the loop answers while pjsip's resolver waits
                assert status_socket.ask([str(agent.status_socket)], timeout_s=3)
            wait_until(
                lambda: any("cannot resolve pbx.blackhole.example" in s
                            for s in agent.notify.statuses()),
                40, f"the failed registration; log:\n{agent.log_tail()}",
            )  # fmt: skip
        finally:
            agent.close()
