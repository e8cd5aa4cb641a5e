"""A provider that publishes only SRV records: two Kamailios behind one domain, a real DNS.

dnsmasq (lab/dns.py) serves `sipagent.test`: NAPTR → `_sip._udp` SRV → k1 (priority
10) and k2 (priority 20) on loopback addresses of their own and non-standard ports, and no
A record for the domain itself. The agent knows only `registrar = "sip:sipagent.test"` and
the nameserver. Root only (the DNS server listens on port 53), as CI runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters import status_socket
from lab.agentproc import wait_status
from lab.dns import DOMAIN, K1, K2, DnsServer, Zone, provider_config, srv_zone
from lab.kamailio import Kamailio
from lab.ports import free_port

LAMP = 17


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[Kamailio, Kamailio]]:
    k1 = Kamailio(tmp_path / "k1", port=free_port(), host=K1, domain=DOMAIN)
    k2 = Kamailio(tmp_path / "k2", port=free_port(), host=K2, domain=DOMAIN)
    with k1, k2:
        yield k1, k2


@pytest.fixture
def dns(tmp_path: Path, two_servers: tuple[Kamailio, Kamailio]) -> Iterator[DnsServer]:
    k1, k2 = two_servers
    with DnsServer(tmp_path / "dns", srv_zone(k1.port, k2.port)) as server:
        yield server


def owner_at(peer_factory, server: Kamailio):  # type: ignore[no-untyped-def]
    return peer_factory("owner", server=server)


def test_srv_only_provider_registers_at_the_first_target_then_fails_over_to_the_second(
    two_servers, dns, agent_factory, peer_factory
):
    k1, k2 = two_servers
    agent = agent_factory(provider_config(dns))
    agent.wait_ready(timeout=20)
    log = agent.log.read_text()
    assert f"using k1.{DOMAIN}:{k1.port}" in log, log[-3000:]
    owner1 = owner_at(peer_factory, k1)
    owner1.send(f"sip:agent@{DOMAIN}", "on lamp")
    assert owner1.wait_message()["body"] == "ok: lamp on"
    asked = dns.queries()
    assert f"_sip._udp.{DOMAIN}" in asked and f"k1.{DOMAIN}" in asked, asked

    mark = len(agent.notify.statuses())
    k1.stop()
    # The periodic check (2 s) finds k1 silent; 8 s without an answer and k2 is tried.
    wait_status(agent, rf"SIP registered as .* via k2\.{DOMAIN}:{k2.port}", 40, after=mark)
    owner2 = owner_at(peer_factory, k2)
    owner2.send(f"sip:agent@{DOMAIN}", "off lamp")
    # k2's MESSAGE comes from an address the agent never registered at before the failover:
    # the perimeter takes it (every SRV target is the provider's).
    assert owner2.wait_message()["body"] == "ok: lamp off"
    assert agent.pin(LAMP) is False


def test_a_name_that_does_not_resolve_gives_a_clear_status_and_the_loop_answers(dns, agent_factory):
    agent = agent_factory(provider_config(dns, registrar=f"sip:nowhere.{DOMAIN}"))
    line = wait_status(agent, r"SIP failed", 30)
    assert f"cannot resolve nowhere.{DOMAIN}" in line, line
    answer = status_socket.ask([str(agent.status_socket)], timeout_s=5)
    assert answer, answer
    assert f"_sip._udp.nowhere.{DOMAIN}" in dns.queries()


def test_records_changed_by_the_provider_are_followed_once_their_ttl_runs_out(
    tmp_path, two_servers, agent_factory, peer_factory
):
    k1, k2 = two_servers
    with DnsServer(tmp_path / "dns", srv_zone(k1.port, k2.port, ttl=1)) as dns:
        agent = agent_factory(provider_config(dns))
        agent.wait_ready(timeout=20)
        mark = len(agent.notify.statuses())
        # The provider retires k1 from its SRV records (k1 still runs, its name resolves):
        # only looking the records up again, after their TTL, can tell.
        moved = Zone(DOMAIN, ttl=1)
        moved.srv("_sip._udp", f"k2.{DOMAIN}", k2.port, priority=10)
        moved.host(f"k1.{DOMAIN}", K1)
        moved.host(f"k2.{DOMAIN}", K2)
        dns.replace(moved)
        wait_status(agent, rf"SIP registered .* via k2\.{DOMAIN}:{k2.port}", 40, after=mark)
        assert f"using k2.{DOMAIN}:{k2.port}" in agent.log.read_text()
        owner = owner_at(peer_factory, k2)
        owner.send(f"sip:agent@{DOMAIN}", "on lamp")
        assert owner.wait_message()["body"] == "ok: lamp on"
