"""Which nameservers pjsip's DNS resolver can use. Pure.

With a nameserver configured, pjsip resolves every name (the registrar's SRV records, the
proxy, `message_to`, `presence.watch`, `B/message/send` targets) asynchronously on its own
ioqueue; without one it calls the system's `getaddrinfo`, which blocks the owner loop for
as long as a DNS server takes to answer (or not). So the agent always gives it one, unless
the owner says `sip.nameservers = []` (agent.config.nameservers reads the key; the SIP adapter,
agent.adapters.sip.nameservers, reads /etc/resolv.conf). pjsip's resolver does not read
/etc/hosts.
"""

from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger(__name__)

# glibc reads at most 3; with none listed it asks the local machine (resolv.conf(5)).
MAX_NAMESERVERS = 3
LOCAL = "127.0.0.1"


def usable(text: str) -> str | None:
    """`text` as pjsip accepts a nameserver (an address without port or zone), or None."""
    if "%" in text:
        return None  # a zone (fe80::1%eth0): pjsua2 refuses it
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None  # a name, "1.2.3.4:53", "fe80::1%eth0": pjsua2 refuses them


def from_resolv_conf(text: str, source: str = "/etc/resolv.conf") -> list[str]:
    """The nameservers of a resolv.conf text that pjsip can use (LOCAL when none)."""
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = usable(fields[1])
            if address is None:
                log.info("nameserver %r in %s is not usable by pjsip", fields[1], source)
            elif address not in found:
                found.append(address)
    return found[:MAX_NAMESERVERS] or [LOCAL]
