"""The agent on a real network: TLS that verifies, a masquerading NAT, lost links, new addresses.

TLS runs on loopback with a CA the test makes. The NAT tests build namespaces (lab/netns.py):
the agent in "home" behind a "router" that masquerades with a short UDP timeout, Kamailio,
the STUN server and the peer in "internet". They need root, as CI has; without it they fail
saying so.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.agentproc import AgentProcess, wait_status
from lab.certs import TestCa
from lab.childproc import ChildProcess
from lab.configs import agent_config
from lab.kamailio import Kamailio
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe
from lab.netns import ROUTER_PUBLIC, SERVER, SERVER_ALT, NatLab, internet_owner, run_in
from lab.waiting import require_binary, wait_until

LAMP = 17
# The router forgets a UDP binding after this many seconds without traffic.
NAT_UDP_TIMEOUT_S = 5


def _statuses(agent: AgentProcess) -> list[str]:
    return agent.notify.statuses()


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def cas(tmp_path: Path) -> tuple[TestCa, TestCa]:
    return TestCa(tmp_path / "ca"), TestCa(tmp_path / "foreign", "foreign CA")


def test_tls_registrar_signed_by_the_configured_ca_is_accepted(
    cas, kamailio_factory, agent_factory, peer_factory
):
    ca, _ = cas
    server = kamailio_factory(tls=ca.issue("pbx", ["127.0.0.1"]))
    agent = agent_factory(
        agent_config(
            server,
            registrar=server.tls_uri,
            transport="tls",
            tls={"ca_file": str(ca.ca.cert)},
        )
    )
    agent.wait_ready()
    owner = peer_factory("owner", server=server)
    owner.send(server.aor("agent"), "on lamp")
    assert owner.wait_message()["body"] == "ok: lamp on"
    assert agent.pin(LAMP) is True


def test_tls_sips_uri_registers(cas, kamailio_factory, agent_factory):
    ca, _ = cas
    server = kamailio_factory(tls=ca.issue("pbx", ["127.0.0.1"]))
    agent = agent_factory(
        agent_config(
            server,
            registrar=f"sips:{server.host}:{server.tls_port}",
            transport="tls",
            tls={"ca_file": str(ca.ca.cert)},
        )
    )
    agent.wait_ready()


@pytest.mark.parametrize(
    ("issuer", "hosts", "expired", "why"),
    [
        ("foreign", ["127.0.0.1"], False, "unknown CA"),
        ("ours", ["pbx.elsewhere.test", "127.0.0.2"], False, "wrong host"),
        ("ours", ["127.0.0.1"], True, "expired"),
    ],
    ids=["foreign-ca", "wrong-host", "expired"],
)
def test_tls_registrar_that_does_not_verify_is_refused_with_the_reason(
    cas, kamailio_factory, agent_factory, issuer, hosts, expired, why
):
    ca, foreign = cas
    signer = foreign if issuer == "foreign" else ca
    server = kamailio_factory(tls=signer.issue("pbx", hosts, expired=expired))
    agent = agent_factory(
        agent_config(
            server,
            registrar=server.tls_uri,
            transport="tls",
            tls={"ca_file": str(ca.ca.cert)},
            recovery={"retry_min_s": 60},
        )
    )
    line = wait_status(agent, r"SIP failed", timeout=15)
    assert why in line, line
    assert agent.notify.times("READY") == []
    log = agent.log.read_text()
    assert re.search(rf"TLS certificate of .* refused: .*{why}", log), log[-3000:]
    # Refused before anything was sent: Kamailio never saw a REGISTER from the agent.
    assert "REGISTER" not in server.log.read_text()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_connection_lost_when_the_registrar_restarts_then_registered_again(
    cas, kamailio_factory, agent_factory, peer_factory, transport
):
    ca, _ = cas
    server = kamailio_factory(tls=ca.issue("pbx", ["127.0.0.1"]))
    registrar = server.tls_uri if transport == "tls" else server.registrar_uri
    agent = agent_factory(
        agent_config(
            server,
            registrar=registrar,
            transport=transport,
            tls={"ca_file": str(ca.ca.cert)},
            recovery={"retry_min_s": 1, "retry_max_s": 4},
        )
    )
    agent.wait_ready()
    mark = len(_statuses(agent))
    server.restart()  # forgets every registration: only a new REGISTER makes the agent reachable
    wait_status(agent, r"SIP failed \(connection to the server closed\)", timeout=10, after=mark)
    wait_status(agent, r"SIP registered as 127\.0\.0\.1:", timeout=15, after=mark)
    owner = peer_factory("owner", server=server)
    owner.send(server.aor("agent"), "on lamp")
    assert owner.wait_message()["body"] == "ok: lamp on"


def test_tls_client_certificate_is_presented_to_a_server_that_demands_one(
    cas, kamailio_factory, agent_factory
):
    ca, _ = cas
    server = kamailio_factory(tls=ca.issue("pbx", ["127.0.0.1"]), tls_client_ca=ca.ca.cert)
    client = ca.issue("porch", ["porch.sipagent.test"])
    base = {"ca_file": str(ca.ca.cert)}
    without = agent_factory(
        agent_config(server, registrar=server.tls_uri, transport="tls", tls=base,
                     recovery={"retry_min_s": 60})
    )  # fmt: skip
    wait_status(without, r"SIP failed", timeout=15)
    with_cert = agent_factory(
        agent_config(
            server,
            registrar=server.tls_uri,
            transport="tls",
            tls={**base, "cert_file": str(client.cert), "key_file": str(client.key)},
        )
    )
    with_cert.wait_ready()


# -- the NAT lab -----------------------------------------------------------------------------


@pytest.fixture
def nat_lab() -> Iterator[NatLab]:
    with NatLab(udp_timeout_s=NAT_UDP_TIMEOUT_S) as lab:
        yield lab


@pytest.fixture
def internet_kamailio(nat_lab: NatLab, tmp_path: Path) -> Iterator[Kamailio]:
    with Kamailio(tmp_path / "kamailio", host=SERVER, netns=nat_lab.internet) as server:
        yield server


NatAgent = Callable[..., AgentProcess]


@pytest.fixture
def home_agent(nat_lab, internet_kamailio, agent_factory) -> NatAgent:
    """An agent in the home namespace registered at the internet Kamailio through the NAT."""

    def start(**kwargs: object) -> AgentProcess:
        text = agent_config(internet_kamailio, listen="0.0.0.0:0", **kwargs)  # type: ignore[arg-type]
        return agent_factory(text, netns=nat_lab.home)

    return start


def public_in_status(line: str) -> tuple[str, int]:
    match = re.search(r"as (\S+):(\d+)", line)
    assert match, line
    return match.group(1), int(match.group(2))


@pytest.mark.slow
def test_keepalives_hold_the_nat_binding_across_many_timeouts(
    nat_lab, internet_kamailio, home_agent, peer_factory
):
    agent = home_agent(nat={"keepalive_s": 2}, recovery={"check_s": 0})
    agent.wait_ready()
    line = wait_status(agent, rf"SIP registered as {re.escape(ROUTER_PUBLIC)}:", timeout=10)
    public = public_in_status(line)
    owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
    # Six NAT timeouts without any request from either side: only keep-alives cross the NAT.
    start = time.monotonic()
    seen_ports: set[int] = set()

    def six_timeouts_passed() -> bool:
        seen_ports.update(
            m.public[1]
            for m in nat_lab.udp_mappings()
            if m.remote == (SERVER, internet_kamailio.port)
        )
        return time.monotonic() - start > 6 * NAT_UDP_TIMEOUT_S

    wait_until(six_timeouts_passed, 8 * NAT_UDP_TIMEOUT_S, "six NAT timeouts", interval=0.5)
    assert seen_ports == {public[1]}, f"the binding changed: {seen_ports} vs {public}"
    owner.send(internet_kamailio.aor("agent"), "on lamp", timeout=15)
    assert owner.wait_message()["body"] == "ok: lamp on"


def test_without_keepalives_the_binding_dies_control(
    nat_lab, internet_kamailio, home_agent, peer_factory
):
    """The control for the test above: the lab's NAT really forgets an idle binding."""
    agent = home_agent(nat={"keepalive_s": 0}, recovery={"check_s": 0})
    agent.wait_ready()
    line = wait_status(agent, r"SIP registered as ", timeout=10)
    public = public_in_status(line)
    wait_until(
        lambda: all(m.public != public for m in nat_lab.udp_mappings()),
        3 * NAT_UDP_TIMEOUT_S,
        "the idle binding to expire",
        interval=0.5,
    )
    owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
    sent = owner.send(internet_kamailio.aor("agent"), "on lamp", timeout=15)
    assert sent["code"] >= 400, sent
    assert agent.pin(LAMP) is False


@pytest.mark.slow
def test_link_cut_for_20s_then_registered_and_reachable_within_the_backoff_bound(
    nat_lab, internet_kamailio, home_agent, peer_factory
):
    retry_max, check = 8, 4
    agent = home_agent(
        nat={"keepalive_s": 2},
        recovery={"check_s": check, "retry_min_s": 1, "retry_max_s": retry_max},
    )
    agent.wait_ready()
    before = public_in_status(wait_status(agent, r"SIP registered as ", timeout=10))
    owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
    nat_lab.cut_link()
    mark = len(_statuses(agent))
    # The periodic check notices: its REGISTER goes unanswered.
    cut_at = time.monotonic()
    wait_until(lambda: time.monotonic() - cut_at >= 20, 25, "20 s of lost link", interval=0.5)
    nat_lab.restore_link()
    # The check's REGISTER sent during the cut is still being retransmitted (every 4 s at
    # most, for 32 s): one gets through. Without it, the next check or backoff step would.
    bound = 4 + check + retry_max + 5
    line = wait_status(agent, r"SIP registered as ", timeout=bound, after=mark)
    after = public_in_status(line)
    assert after != before, "the router gave the new binding a new port"
    owner.send(internet_kamailio.aor("agent"), "on lamp", timeout=15)
    assert owner.wait_message()["body"] == "ok: lamp on"


def test_wifi_down_and_back_registers_at_once_without_waiting_for_a_check(
    nat_lab, internet_kamailio, home_agent, peer_factory
):
    # No periodic check: only the route watch can notice, and it must.
    agent = home_agent(nat={"keepalive_s": 2}, recovery={"check_s": 0})
    agent.wait_ready()
    before = public_in_status(wait_status(agent, r"SIP registered as ", timeout=10))
    nat_lab.wifi_down()
    wait_until(
        lambda: all(m.public != before for m in nat_lab.udp_mappings()),
        3 * NAT_UDP_TIMEOUT_S,
        "the router to forget the binding",
        interval=0.5,
    )
    wait_status(agent, r"SIP failed \(network down: no route to the registrar\)", timeout=5)
    mark = len(_statuses(agent))
    nat_lab.wifi_up()
    line = wait_status(agent, r"SIP registered as ", timeout=10, after=mark)
    assert public_in_status(line) != before
    assert "network: network back; registering again at once" in agent.log.read_text()
    owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
    owner.send(internet_kamailio.aor("agent"), "on lamp", timeout=15)
    assert owner.wait_message()["body"] == "ok: lamp on"


def test_message_asked_for_while_offline_fails_with_a_reason_and_works_after(
    nat_lab, internet_kamailio, home_agent, peer_factory, tmp_path
):
    # Home automation on the LAN: the broker is in the home namespace, SIP goes through the NAT.
    with Mosquitto(tmp_path / "mosquitto", netns=nat_lab.home) as broker:
        probe = run_in(nat_lab.home, lambda: MqttProbe(broker.host, broker.port, ["sipagent/#"]))
        try:
            agent = home_agent(mqtt=broker, nat={"keepalive_s": 2}, recovery={"check_s": 0})
            agent.wait_ready()
            probe.wait_for("sipagent/net/availability", lambda m: m.payload == b"online")
            owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
            nat_lab.wifi_down()
            wait_status(agent, r"SIP failed \(network down", timeout=5)
            request = {"to": internet_kamailio.aor("owner"), "body": "door opened", "id": "m1"}
            probe.publish("sipagent/net/message/send", json.dumps(request))
            sent = probe.wait_for("sipagent/net/message/sent", timeout=15).json()
            assert sent["id"] == "m1" and sent["ok"] is False and sent["reason"], sent
            mark = len(_statuses(agent))
            nat_lab.wifi_up()
            wait_status(agent, r"SIP registered as ", timeout=10, after=mark)
            probe.publish("sipagent/net/message/send", json.dumps({**request, "id": "m2"}))
            assert owner.wait_message()["body"] == "door opened"
            again = probe.wait_for("sipagent/net/message/sent", timeout=15).json()
            assert again["id"] == "m2" and again["ok"] is True, again
        finally:
            probe.close()


def test_address_change_re_registers_with_the_new_contact(
    nat_lab, internet_kamailio, home_agent, peer_factory
):
    agent = home_agent(nat={"keepalive_s": 2}, recovery={"check_s": 60, "retry_max_s": 8})
    agent.wait_ready()
    before = public_in_status(wait_status(agent, r"SIP registered as ", timeout=10))
    mark = len(_statuses(agent))
    nat_lab.change_home_address(23)
    line = wait_status(agent, r"SIP registered as ", timeout=20, after=mark)
    assert public_in_status(line) != before
    assert "local address changed from 192.0.2.10 to 192.0.2.23" in agent.log.read_text()
    owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
    owner.send(internet_kamailio.aor("agent"), "on lamp", timeout=15)
    assert owner.wait_message()["body"] == "ok: lamp on"


def test_mqtt_registration_carries_the_public_address_through_the_nat(
    nat_lab, internet_kamailio, home_agent, tmp_path
):
    with Mosquitto(tmp_path / "mosquitto", host=SERVER, netns=nat_lab.internet) as broker:
        probe = run_in(
            nat_lab.internet, lambda: MqttProbe(broker.host, broker.port, topics=["sipagent/#"])
        )
        try:
            agent = home_agent(mqtt=broker, recovery={"check_s": 0})
            agent.wait_ready()
            reg = probe.wait_for(
                "sipagent/net/registration", lambda m: m.json()["state"] == "registered"
            ).json()
            assert reg["public"].startswith(f"{ROUTER_PUBLIC}:"), reg
            status = wait_status(agent, r"SIP registered as ", timeout=5)
            assert f"as {reg['public']} (200 OK)" in status
        finally:
            probe.close()


@pytest.mark.slow
def test_registrar_gone_for_a_minute_then_back_within_the_backoff_bound(
    nat_lab, internet_kamailio, home_agent, peer_factory
):
    retry_max = 8
    agent = home_agent(
        nat={"keepalive_s": 2},
        recovery={"check_s": 3, "retry_min_s": 1, "retry_max_s": retry_max},
    )
    agent.wait_ready()
    wait_status(agent, r"SIP registered as ", timeout=10)
    mark = len(_statuses(agent))
    internet_kamailio.stop()  # its registrations are in memory: they are gone too
    first = wait_status(agent, r"SIP failed .*retry 1 in", timeout=45, after=mark)
    later = wait_status(agent, r"SIP failed .*retry 2 in", timeout=80, after=mark)
    assert any("SIP registering (attempt 2)" in s for s in _statuses(agent)[mark:])
    # Each delay the agent announced follows the schedule: 1 s doubling up to retry_max, less
    # up to half of it (jitter); shown in whole seconds.
    for line in _statuses(agent)[mark:]:
        if m := re.search(r"retry (\d+) in (\d+)s", line):
            base = min(retry_max, 1 * 2 ** (int(m[1]) - 1))
            assert base / 2 - 0.5 <= int(m[2]) <= retry_max, line
    internet_kamailio.start()
    mark = len(_statuses(agent))
    # Back within the bound: one backoff delay, plus a REGISTER's retransmissions (T2 = 4 s).
    wait_status(agent, r"SIP registered as ", timeout=retry_max + 4 + 5, after=mark)
    owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
    owner.send(internet_kamailio.aor("agent"), "on lamp", timeout=15)
    assert owner.wait_message()["body"] == "ok: lamp on"
    assert "408" in first or "503" in first or "Timeout" in first, first
    assert later


@pytest.fixture
def stun_server(nat_lab, tmp_path) -> Iterator[str]:
    """Debian's stund in the internet namespace (it needs two addresses); yields its host."""
    stund = require_binary("stund", "the Debian package stun-server")
    server = ChildProcess(
        "stund",
        [*nat_lab.prefix_for(nat_lab.internet), stund, "-h", SERVER, "-a", SERVER_ALT],
        tmp_path / "stund.log",
        tmp_path,
    )
    server.start()
    yield SERVER
    server.stop()


def test_stun_server_in_the_internet_reports_the_mapped_address(nat_lab, stun_server):
    client = require_binary("stun", "the Debian package stun-client")
    done = subprocess.run(
        [*nat_lab.prefix_for(nat_lab.home), client, stun_server, "-v"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    text = done.stdout + done.stderr
    assert f"MappedAddress = {ROUTER_PUBLIC}:" in text, text


def test_agent_with_stun_learns_its_public_address_before_registering(
    nat_lab, stun_server, internet_kamailio, home_agent, peer_factory
):
    agent = home_agent(nat={"keepalive_s": 2, "stun": stun_server}, recovery={"check_s": 0})
    agent.wait_ready()
    wait_status(agent, rf"SIP registered as {re.escape(ROUTER_PUBLIC)}:", timeout=10)
    log = agent.log.read_text()
    # pjsip's own line (debug level): the STUN server told it the router's public address.
    assert f"STUN mapped address found/changed: {ROUTER_PUBLIC}:" in log, log[-3000:]
    owner = internet_owner(peer_factory, nat_lab, internet_kamailio)
    owner.send(internet_kamailio.aor("agent"), "on lamp", timeout=15)
    assert owner.wait_message()["body"] == "ok: lamp on"
