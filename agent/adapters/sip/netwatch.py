"""Which local address the kernel would use to reach the registrar, checked cheaply and often.

A DHCP renewal with a new lease, Wi-Fi roaming or an interface that goes down all change this
answer, and pjsua notices none of them by itself. Connecting a UDP socket sends nothing: the
kernel only picks the route and the source address, so checking every few seconds is free.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket


class RouteWatch:
    """Reports the local source address toward the registrar, or None when there is no route.

    Never looks a name up (that would block the owner loop): a registrar given by name is
    watched once `aim` has its address (from agent.adapters.sip.hops, through pjsip's resolver).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host.strip("[]")
        self.port = port
        self._target: tuple[int, str] | None = None
        self.last: str | None = None
        with contextlib.suppress(ValueError):  # a name: nothing to watch until it is known
            self.aim(self.host)

    def aim(self, address: str, port: int | None = None) -> None:
        """Watch the route to `address` (an IP address) from now on."""
        addr = ipaddress.ip_address(address.strip("[]"))
        family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
        self._target = (family, str(addr))
        if port is not None:
            self.port = port

    def source(self, now: float) -> str | None:
        """The local address a packet to the registrar would leave from, or None."""
        target = self._target
        if target is None:
            return None
        family, address = target
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((address, self.port))
            except OSError:
                return None  # no route: the link is down or has no address yet
            return str(sock.getsockname()[0])

    def changed(self, now: float) -> tuple[str | None, str | None] | None:
        """(old, new) when the source address differs from the last check, else None."""
        current = self.source(now)
        if current == self.last:
            return None
        old, self.last = self.last, current
        return old, current
