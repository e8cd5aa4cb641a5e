"""Which source addresses count as the registrar/proxy in routed mode. Pure.

Three kinds: what the config names as addresses or networks (`sip.trusted`, the registrar
and proxy when given as IP addresses); what their host names resolved to, off the owner
thread (agent.adapters.sip.resolver); and where the answers to our REGISTERs came from (learned
without any lookup). Only addresses are compared, never ports: a proxy may send from any port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The registrar can move (a failover, a new address); keep the last few it answered from.
LEARNED = 8


def as_network(text: str) -> Network | None:
    """An address or a network in CIDR form, or None when `text` is a host name."""
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        return None


class Trust:
    def __init__(self, configured: Iterable[str] = ()) -> None:
        networks = [n for n in (as_network(t) for t in configured) if n is not None]
        # Single addresses are looked up in a set; only real networks are scanned.
        self._networks = tuple(n for n in networks if n.num_addresses > 1)
        self._addresses = frozenset(
            str(n.network_address) for n in networks if n.num_addresses == 1
        )
        self._resolved: dict[str, frozenset[str]] = {}  # host name -> its addresses
        self._learned: list[str] = []
        self._exact: frozenset[str] = frozenset()
        self._rebuild()

    def contains(self, source: str) -> bool:
        if source in self._exact:
            return True
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(source.strip("[]"))
        except ValueError:
            return False
        return any(address in n for n in self._networks)

    def resolved(self, host: str, addresses: Iterable[str]) -> None:
        """`host` now resolves to `addresses` (replacing what it resolved to before)."""
        self._resolved[host] = frozenset(_normal(a) for a in addresses)
        self._rebuild()

    def learn(self, source: str) -> None:
        """An answer to our REGISTER came from `source` (an address)."""
        address = _normal(source)
        if address in self._learned:
            return
        self._learned = [*self._learned[-(LEARNED - 1) :], address]
        self._rebuild()

    def networks(self) -> list[Network]:
        """Everything trusted, as networks (single addresses as /32 or /128)."""
        exact = [ipaddress.ip_network(a) for a in sorted(self._exact) if as_network(a)]
        return exact + list(self._networks)

    def describe(self) -> str:
        parts = sorted(self._exact) + [str(n) for n in self._networks]
        return ", ".join(parts) or "nobody yet"

    def _rebuild(self) -> None:
        exact = set(self._addresses)
        for addresses in self._resolved.values():
            exact |= addresses
        self._exact = frozenset(exact | set(self._learned))


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        return address
