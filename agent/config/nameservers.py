"""Where pjsip's DNS resolver sends its queries: `sip.nameservers`, else /etc/resolv.conf.

With a nameserver configured, pjsip resolves every name (the registrar's SRV records, the
proxy, `message_to`, `presence.watch`, `B/message/send` targets) asynchronously on its own
ioqueue; without one it calls the system's `getaddrinfo`, which blocks the owner loop for
as long as a DNS server takes to answer (or not). So the agent always gives it one, unless
the owner says `sip.nameservers = []`. pjsip's resolver does not read /etc/hosts.
"""

from __future__ import annotations

import ipaddress
import logging

from agent.config.table import Table

log = logging.getLogger(__name__)

RESOLV_CONF = "/etc/resolv.conf"
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


def from_resolv_conf(text: str) -> list[str]:
    """The nameservers of a resolv.conf text that pjsip can use (LOCAL when none)."""
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = usable(fields[1])
            if address is None:
                log.info("nameserver %r in %s is not usable by pjsip", fields[1], RESOLV_CONF)
            elif address not in found:
                found.append(address)
    return found[:MAX_NAMESERVERS] or [LOCAL]


def system_nameservers(path: str = RESOLV_CONF) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return from_resolv_conf(file.read())
    except OSError as err:
        log.warning("cannot read %s (%s): asking %s for names", path, err.strerror, LOCAL)
        return [LOCAL]


def choose(configured: tuple[str, ...] | None, path: str = RESOLV_CONF) -> list[str]:
    """What pjsip's resolver asks: the configured list, else the system's."""
    return list(configured) if configured is not None else system_nameservers(path)


def read_nameservers(t: Table) -> tuple[str, ...] | None:
    """`sip.nameservers`: IP addresses (port 53); [] turns pjsip's resolver off."""
    if "nameservers" not in t.raw:
        return None
    found: list[str] = []
    for where, text in t.texts("nameservers"):
        address = usable(text)
        if address is None:
            t.problems.append(
                f"{where}: {text!r} is not an IP address (pjsip asks port 53; no names, "
                "ports or zones)"
            )
        else:
            found.append(address)
    return tuple(found)
