"""Which local address the kernel would use to reach the registrar, checked cheaply and often.

A DHCP renewal with a new lease, Wi-Fi roaming or an interface that goes down all change this
answer, and pjsua notices none of them by itself. Connecting a UDP socket sends nothing: the
kernel only picks the route and the source address, so checking every few seconds is free.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

log = logging.getLogger(__name__)

# How long a failed name lookup is trusted before the next try: no DNS traffic every check.
_RESOLVE_RETRY_S = 30.0


class RouteWatch:
    """Reports the local source address toward `host`, or None when there is no route."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host.strip("[]")
        self.port = port
        self._target: tuple[int, str] | None = None
        self._resolve_after = 0.0
        self.last: str | None = None

    def _resolve(self, now: float) -> tuple[int, str] | None:
        if self._target is not None:
            return self._target
        try:
            addr = ipaddress.ip_address(self.host)
        except ValueError:
            if now < self._resolve_after:
                return None
            try:
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            except OSError as err:
                log.debug("cannot resolve %s for the route check: %s", self.host, err)
                self._resolve_after = now + _RESOLVE_RETRY_S
                return None
            family, _, _, _, sockaddr = infos[0]
            self._target = (family, str(sockaddr[0]))
        else:
            family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
            self._target = (family, str(addr))
        return self._target

    def source(self, now: float) -> str | None:
        """The local address a packet to the registrar would leave from, or None."""
        target = self._resolve(now)
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
