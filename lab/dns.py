"""A real DNS server for the tests: Debian's dnsmasq serving NAPTR, SRV, A and AAAA records.

    zone = Zone("sipagent.test")
    zone.srv("_sip._udp", "k1.sipagent.test", 5071, priority=10)
    zone.host("k1.sipagent.test", "127.0.0.2")
    with DnsServer(tmp_path / "dns", zone) as dns:      # answers on dns.address, port 53
        ...  agent config: sip.nameservers = [dns.address]

pjsua2 2.15 refuses a nameserver given with a port (docs/pjsip.md), so the server listens on
port 53 of a loopback address of its own (127.53.x.y: all of 127.0.0.0/8 is loopback here),
which needs root, as CI has. It answers only for its zone (no upstream, no /etc/hosts) and
logs every query, so a test can tell what was asked. `replace(zone)` restarts it with other
records on the same address (what a provider changing its DNS looks like after the TTL).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .childproc import ChildProcess, LabServer
from .netns import require_root, socket_in
from .waiting import require_binary


@dataclass
class Zone:
    """The records to serve; every record gets `ttl` seconds."""

    domain: str
    ttl: int = 60
    lines: list[str] = field(default_factory=list)

    def srv(self, service: str, target: str, port: int, priority: int = 10, weight: int = 50):
        """`service` is "_sip._udp" (the domain is appended)."""
        self.lines.append(f"srv-host={service}.{self.domain},{target},{port},{priority},{weight}")
        return self

    def naptr(self, order: int, pref: int, service: str, replacement: str):
        """An RFC 3263 NAPTR record of the domain: flags "S", e.g. service "SIP+D2U"."""
        self.lines.append(
            f'naptr-record={self.domain},{order},{pref},"S","{service}","",{replacement}'
        )
        return self

    def host(self, name: str, *addresses: str):
        """A and/or AAAA records for `name`."""
        self.lines.append(f"host-record={name},{','.join(addresses)},{self.ttl}")
        return self


def loopback_address() -> str:
    """A loopback address nobody else in this run uses: 127.53.<pid>.<random>."""
    return f"127.53.{os.getpid() % 250 + 1}.{secrets.randbelow(250) + 2}"


class DnsServer(LabServer):
    name = "dnsmasq"
    start_timeout = 10.0

    def __init__(
        self, workdir: Path, zone: Zone, *, address: str | None = None, netns: str | None = None
    ) -> None:
        require_root()  # port 53
        self.workdir = Path(workdir)
        self.zone = zone
        self.address = address or loopback_address()
        self.netns = netns
        self.log = self.workdir / "dnsmasq.log"
        self.conf = self.workdir / "dnsmasq.conf"
        self._child: ChildProcess | None = None

    def _command(self) -> list[str]:
        binary = require_binary("dnsmasq", "the Debian package dnsmasq-base")
        self.workdir.mkdir(parents=True, exist_ok=True)
        z = self.zone
        self.conf.write_text(
            "\n".join(
                [
                    "port=53",
                    f"listen-address={self.address}",
                    "bind-interfaces",
                    "no-resolv",  # no upstream: names outside the zone are not found
                    "no-hosts",  # not /etc/hosts either
                    "no-negcache",
                    f"local=/{z.domain}/",  # the zone is ours: NXDOMAIN for what it lacks
                    f"local-ttl={z.ttl}",
                    f"auth-ttl={z.ttl}",
                    "log-queries",
                    "user=root",
                    *z.lines,
                ]
            )
            + "\n"
        )
        return [
            binary,
            "--keep-in-foreground",
            "--conf-file=" + str(self.conf),
            "--log-facility=-",
            "--pid-file=",
        ]

    def _waiting_for(self) -> str:
        return f"dnsmasq to answer on {self.address}:53"

    def _answers(self) -> bool:
        assert self._child is not None
        self._child.check_alive()
        return query(self.address, self.zone.domain, 2, netns=self.netns) is not None

    def replace(self, zone: Zone) -> None:
        """Serve other records from now on (a restart on the same address)."""
        self.zone = zone
        self.restart()

    def queries(self) -> list[str]:
        """The names asked for so far, in order (from dnsmasq's log)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return re.findall(r"query\[\w+\] (\S+) from", text)


def query(server: str, name: str, qtype: int, *, netns: str | None = None) -> bytes | None:
    """One UDP query (qtype 1 = A, 33 = SRV, ...); the answer's bytes or None on timeout."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = secrets.token_bytes(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    packet += question + qtype.to_bytes(2, "big") + b"\x00\x01"
    with socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(packet, (server, 53))
            return sock.recv(4096)
        except OSError:
            return None


# -- a provider that publishes only SRV records (tests/system/test_dns_srv.py, bench_dns.py) --

DOMAIN = "sipagent.test"
K1, K2 = "127.0.0.2", "127.0.0.3"


def srv_zone(p1: int, p2: int, ttl: int = 60, *, second: str = K2) -> Zone:
    zone = Zone(DOMAIN, ttl=ttl)
    zone.naptr(10, 50, "SIP+D2U", f"_sip._udp.{DOMAIN}")
    zone.srv("_sip._udp", f"k1.{DOMAIN}", p1, priority=10)
    zone.srv("_sip._udp", f"k2.{DOMAIN}", p2, priority=20)
    zone.host(f"k1.{DOMAIN}", K1)
    zone.host(f"k2.{DOMAIN}", second)
    return zone


def provider_config(dns: DnsServer, *, registrar: str = f"sip:{DOMAIN}", extra: str = "") -> str:
    return (
        '[device]\nid = "srv"\n\n[sip]\n'
        f'uri = "sip:agent@{DOMAIN}"\nregistrar = "{registrar}"\npassword = "agentpw"\n'
        f'listen = "127.0.0.1:0"\npresence = "off"\nnameservers = ["{dns.address}"]\n'
        f"{extra}\n"
        "[sip.recovery]\ncheck_s = 2\nretry_min_s = 1\nretry_max_s = 4\n\n"
        f'[access]\nallow = ["sip:owner@{DOMAIN}"]\n\n[log]\nlevel = "debug"\n\n'
        '[gpio]\npin_factory = "mock"\n\n[gpio.outputs.lamp]\npin = "GPIO17"\n'
    )
