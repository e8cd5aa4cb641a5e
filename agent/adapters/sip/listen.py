"""The SIP listeners: one address family, or both for `listen = "[::]:<port>"`.

pjsip's transports are per family. `0.0.0.0` (the default) listens on IPv4 only; an IPv6
address on IPv6 only; `[::]` on both, an IPv4 and an IPv6 transport on the same port (pjsip
makes its IPv6 sockets v6-only, so the two do not collide). Requests come in on both; the
account sends over IPv6 when its registrar (or proxy) is an IPv6 address, else over IPv4
(pjsua2 2.15 with an account bound to no transport fails to send with "Unsuitable transport
selected"). Owner thread.
"""

from __future__ import annotations

import ipaddress

import pjsua2 as pj

from agent.adapters.sip import net as sipnet
from agent.config.model import SipConfig
from agent.core.sipuri import parse_sip_uri

_KINDS = {
    ("udp", 4): pj.PJSIP_TRANSPORT_UDP,
    ("tcp", 4): pj.PJSIP_TRANSPORT_TCP,
    ("tls", 4): pj.PJSIP_TRANSPORT_TLS,
    ("udp", 6): pj.PJSIP_TRANSPORT_UDP6,
    ("tcp", 6): pj.PJSIP_TRANSPORT_TCP6,
    ("tls", 6): pj.PJSIP_TRANSPORT_TLS6,
}


def families(host: str) -> tuple[int, ...]:
    """The address families `sip.listen`'s host listens on."""
    host = host.strip("[]")
    if host in ("::", ""):
        return (4, 6)
    try:
        return (ipaddress.ip_address(host).version,)
    except ValueError:
        return (4,)


def hop_family(config: SipConfig) -> int:
    """6 when the registrar (or proxy) is an IPv6 address, else 4."""
    uri = config.proxy or config.registrar
    return 6 if uri and "[" in parse_sip_uri(uri).host else 4


def create(ep: pj.Endpoint, config: SipConfig) -> tuple[int, str]:
    """Create the listeners; (the account's transport id, its local address)."""
    tids: dict[int, tuple[int, str]] = {}
    port = config.listen_port
    for family in families(config.listen_host):
        tc = sipnet.transport_config(config)
        tc.port = port
        tid = ep.transportCreate(_KINDS[(config.transport, family)], tc)
        name = ep.transportGetInfo(tid).localName
        port = int(name.rsplit(":", 1)[1])  # port 0: the second listens where the first does
        tids[family] = (tid, name)
    return tids.get(hop_family(config)) or next(iter(tids.values()))
