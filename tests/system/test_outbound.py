"""SIP outbound (RFC 5626) against Kamailio's outbound module, behind the lab's NAT router.

Kamailio (Debian `kamailio-outbound-modules`) supports outbound in its registrar and asks
for keep-alives with a Flow-Timer; the agent (`sip.nat.outbound`, on by default) registers
over TCP with `reg-id` and `+sip.instance`, keeps its flow alive with CRLF keep-alives, and
when the router loses the flow (its connection-tracking entry expires during a link cut)
notices it on the next keep-alive and registers a new flow at once: the periodic check is
off and the registration lasts 300 s, so nothing else could bring it back. Root only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.agentproc import wait_status
from lab.configs import agent_config
from lab.kamailio import Kamailio
from lab.netns import SERVER, NatLab, internet_owner
from lab.waiting import wait_until

FLOW_TIMER_S = 3
OUTBOUND = f"""loadmodule "outbound.so"
loadmodule "nathelper.so"
modparam("registrar", "outbound_mode", 1)
modparam("registrar", "flow_timer", {FLOW_TIMER_S})
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")
"""
# The flow is where the REGISTER came from (the router's public side), not the Contact.
FLOW = "\tfix_nated_register();\n"


@pytest.fixture
def lab() -> Iterator[NatLab]:
    with NatLab(udp_timeout_s=5) as nat:
        yield nat


@pytest.fixture
def outbound_kamailio(lab: NatLab, tmp_path: Path) -> Iterator[Kamailio]:
    with Kamailio(
        tmp_path / "kob", host=SERVER, netns=lab.internet, modules=OUTBOUND, before_save=FLOW
    ) as k:
        yield k


def tcp_flows(lab: NatLab, port: int) -> list[str]:
    text = lab._run("cat", "/proc/net/nf_conntrack", netns=lab.router)
    return [line for line in text.splitlines() if " tcp " in line and f"dport={port} " in line]


def test_outbound_flow_with_keepalives_recovers_after_the_router_loses_it(
    lab, outbound_kamailio, agent_factory, peer_factory
):
    server = outbound_kamailio
    text = agent_config(server, transport="tcp", listen="0.0.0.0:0",
                        recovery={"check_s": 0, "retry_min_s": 1, "retry_max_s": 4})  # fmt: skip
    agent = agent_factory(text, netns=lab.home)
    agent.wait_ready(timeout=20)
    log = agent.log.read_text()
    register = log[log.index("Request msg REGISTER") :]
    contact = re.search(r"^Contact: (.*)$", register, re.M).group(1)
    assert "reg-id=1" in contact and "+sip.instance=" in contact, contact
    assert re.search(r"^Supported: .*outbound", register, re.M), register[:1500]
    ok = log[log.index("Response msg 200/REGISTER") :]
    assert re.search(rf"^Flow-Timer: {FLOW_TIMER_S}", ok, re.M), ok[:1500]
    assert re.search(r"^Require: outbound", ok, re.M), ok[:1500]
    # pjsua keeps the flow alive at the server's Flow-Timer, over TCP too.
    # (pjsua logs the first delay: a random 80-100 % of the Flow-Timer)
    assert re.search(
        rf"Keep-alive timer started .*destination:{SERVER}:{server.port}, "
        rf"interval:[{FLOW_TIMER_S - 1}{FLOW_TIMER_S}]s",
        log,
    ), log[-3000:]
    before = wait_status(agent, r"SIP registered as ", 5)

    # The link goes down long enough for the router to forget the connection.
    mark = len(agent.notify.statuses())
    lab._run("sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_established=2",
             netns=lab.router)  # fmt: skip
    lab.cut_link()
    wait_until(lambda: not tcp_flows(lab, server.port), 30, "the router to drop the flow",
               interval=0.5)  # fmt: skip
    lab.restore_link()
    # The next keep-alive leaves on a new mapping; Kamailio resets it; the agent registers a
    # new flow at once (no check, no refresh for 300 s).
    after = wait_status(agent, r"SIP registered as ", 30, after=mark)
    assert after != before or "connection to the server closed" in agent.log.read_text()
    owner = internet_owner(peer_factory, lab, server)
    owner.send(server.aor("agent"), "on lamp", timeout=15)
    assert owner.wait_message()["body"] == "ok: lamp on"
