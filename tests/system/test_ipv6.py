"""IPv6: listening on both families, registering over IPv6 (loopback and an IPv6-only pair of
namespaces), the broker by IPv6 address, IPv6 literals in URIs, and the TCP guard's kernel
filter on an IPv6 listener."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters.sip import bpf
from agent.adapters.sip.listen import families
from agent.core.registration import public_address
from agent.core.sipuri import address_of_record, parse_sip_uri
from agent.core.trust import Trust
from lab.kamailio import Kamailio
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe
from lab.netns import require_root
from lab.ports import free_port
from lab.sipoptions import sip_options
from lab.waiting import require_binary, wait_until

LAMP = 17


def config(registrar: str | None, listen: str, *, mqtt: str = "", domain: str = "sipagent.test"):
    sip = f'uri = "sip:agent@{domain}"\n'
    if registrar:
        sip += f'registrar = "{registrar}"\npassword = "agentpw"\n'
    return (
        f'[device]\nid = "six"\n\n[sip]\n{sip}listen = "{listen}"\npresence = "off"\n\n'
        f'[access]\nallow = ["sip:owner@{domain}"]\n\n{mqtt}[log]\nlevel = "debug"\n\n'
        '[gpio]\npin_factory = "mock"\n\n[gpio.outputs.lamp]\npin = "GPIO17"\n'
    )


# -- pure: literals, comparisons, addresses -------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:owner@[::1]", "sip:owner@[0:0:0:0:0:0:0:1]:5060"),
        ('"Owner" <sip:owner@[2001:DB8::1];transport=tcp>', "sip:owner@[2001:db8::1]"),
    ],
)
def test_ipv6_literals_compare_as_the_same_identity(a, b):
    assert address_of_record(a) == address_of_record(b)


def test_ipv6_literals_parse_and_show_with_brackets():
    uri = parse_sip_uri("sip:pbx@[2001:db8::10]:5070;lr")
    assert (uri.host, uri.port, str(uri)) == (
        "[2001:db8::10]",
        5070,
        "sip:pbx@[2001:db8::10]:5070;lr",
    )
    assert public_address("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [2001:db8::2]:5060;rport=4000;"
                          "received=2001:db8::99\r\n") == "[2001:db8::99]:4000"  # fmt: skip


def test_the_perimeter_trusts_ipv6_sources_however_written():
    trust = Trust(["2001:db8::/64", "[::1]"])
    assert trust.contains("::1") and trust.contains("2001:db8::5")
    trust.learn("[2001:db8:1::1]")
    assert trust.contains("2001:db8:1::1")
    assert not trust.contains("2001:db9::1")


@pytest.mark.parametrize(
    ("host", "expected"), [("0.0.0.0", (4,)), ("::", (4, 6)), ("::1", (6,)), ("127.0.0.1", (4,))]
)
def test_listen_families(host, expected):
    assert families(host) == expected


# -- the kernel filter on an IPv6 listener --------------------------------------------------


def _connects(listener: socket.socket, family: int, source: str) -> bool:
    port = listener.getsockname()[1]
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(1.0)
        client.bind((source, 0))
        try:
            client.connect(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
        except OSError:
            return False
    listener.settimeout(1.0)
    try:
        listener.accept()[0].close()
    except OSError:
        return False
    return True


def test_the_tcp_filter_keeps_ipv6_strangers_out_and_lets_the_proxy_in():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # both families
        listener.bind(("::", 0))
        listener.listen(8)
        bpf.attach(listener, [ipaddress.ip_network("::1/128")])
        assert _connects(listener, socket.AF_INET6, "::1")
        assert not _connects(listener, socket.AF_INET, "127.0.0.1")  # not the proxy
        bpf.attach(listener, [ipaddress.ip_network("2001:db8::1/128")])
        assert not _connects(listener, socket.AF_INET6, "::1")
        bpf.attach(listener, [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1")])
        assert _connects(listener, socket.AF_INET, "127.0.0.1")  # IPv4 on a dual listener
        assert _connects(listener, socket.AF_INET6, "::1")
        bpf.attach(listener, None)
        assert _connects(listener, socket.AF_INET, "127.0.0.1")


# -- the agent over IPv6 --------------------------------------------------------------------


def test_listen_on_both_families_answers_on_each(agent_factory):
    port = free_port()
    agent = agent_factory(config(None, f"[::]:{port}", domain="127.0.0.1"))
    agent.wait_ready()
    for host in ("127.0.0.1", "::1"):
        reply = wait_until(lambda h=host: sip_options(h, port), 10, f"OPTIONS over {host}")
        assert reply.startswith("SIP/2.0 200"), reply


def test_registers_over_ipv6_to_kamailio_on_loopback_and_takes_a_message(
    kamailio_factory, agent_factory, peer_factory
):
    server = kamailio_factory(also_listen=("::1",))
    agent = agent_factory(config(server.registrar_at("::1"), "[::]:0"))
    agent.wait_ready()
    assert any("SIP registered as [::1]:" in s for s in agent.notify.statuses())
    owner = peer_factory("owner", server=server)  # over IPv4: Kamailio relays to our IPv6 contact
    owner.send(server.aor("agent"), "on lamp")
    assert owner.wait_message()["body"] == "ok: lamp on"
    assert agent.pin(LAMP) is True


def test_the_broker_by_ipv6_address(tmp_path, agent_factory):
    with Mosquitto(tmp_path / "mosquitto", host="::1") as broker:
        probe = MqttProbe("::1", broker.port, topics=["sipagent/#"])
        try:
            mqtt = f'[mqtt]\nhost = "::1"\nport = {broker.port}\n\n'
            agent = agent_factory(config(None, "127.0.0.1:0", mqtt=mqtt, domain="127.0.0.1"))
            agent.wait_ready()
            probe.wait_for("sipagent/six/availability", lambda m: m.payload == b"online")
        finally:
            probe.close()


# -- an IPv6-only network: two namespaces, no IPv4 at all -----------------------------------

SERVER6, HOME6 = "2001:db8:6::1", "2001:db8:6::2"


@pytest.fixture
def v6_pair() -> Iterator[tuple[str, str]]:
    require_root()
    ip = require_binary("ip", "the Debian package iproute2")
    tag = f"s6{free_port() % 10000}"
    server, home = f"{tag}-srv", f"{tag}-home"

    def run(*argv: str) -> None:
        subprocess.run([ip, *argv], check=True, capture_output=True)

    try:
        for ns in (server, home):
            run("netns", "add", ns)
            run("-n", ns, "link", "set", "lo", "up")
        run("link", "add", f"{tag}s", "type", "veth", "peer", "name", f"{tag}h")
        run("link", "set", f"{tag}s", "netns", server)
        run("link", "set", f"{tag}h", "netns", home)
        for ns, ifname, address in ((server, f"{tag}s", SERVER6), (home, f"{tag}h", HOME6)):
            run("-n", ns, "addr", "add", f"{address}/64", "dev", ifname, "nodad")
            run("-n", ns, "link", "set", ifname, "up")
        yield server, home
    finally:
        for ns in (server, home):
            subprocess.run([ip, "netns", "del", ns], capture_output=True, check=False)


def test_registers_across_an_ipv6_only_network(v6_pair, tmp_path: Path, agent_factory):
    server_ns, home_ns = v6_pair
    with Kamailio(tmp_path / "k6", host=SERVER6, netns=server_ns) as server:
        agent = agent_factory(config(server.registrar_uri, "[::]:0"), netns=home_ns)
        agent.wait_ready()
        assert any(f"SIP registered as [{HOME6}]:" in s for s in agent.notify.statuses())
        # Kamailio holds our binding at the IPv6 address (its own log, at debug level 2).
        reply = sip_options(SERVER6, server.port, netns=server_ns)
        assert reply is not None and reply.startswith("SIP/2.0 200")
