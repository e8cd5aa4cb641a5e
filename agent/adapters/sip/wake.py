"""Waking the owner loop from any thread: a datagram to the endpoint's own UDP transport.

The loop may wait long inside `libHandleEvents` (idle CPU); a SIP keep-alive (`\r\n\r\n`)
sent to a loopback transport of the endpoint's own wakes it in about 60 µs, and pjsip drops
it without a log line (docs/pjsip.md).
"""

from __future__ import annotations

import contextlib
import socket

import pjsua2 as pj

# A SIP keep-alive: pjsip drops it silently, and it wakes `libHandleEvents` at once.
_WAKE_DATAGRAM = b"\r\n\r\n"


class Waker:
    """The loopback transport and the socket that writes to it."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    def create(self, ep: pj.Endpoint) -> tuple[str, int]:
        """Its transport on 127.0.0.1 (owner thread, before libStart); its address."""
        tc = pj.TransportConfig()
        tc.port = 0
        tc.boundAddress = "127.0.0.1"
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        host, port = ep.transportGetInfo(tid).localName.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        self._sock = sock
        return host, int(port)

    def wake(self) -> None:
        """Make a running `libHandleEvents` return soon. Safe from any thread."""
        sock = self._sock
        if sock is None:
            return
        # A full socket buffer means wake-ups are already queued; nothing is lost.
        with contextlib.suppress(OSError):
            sock.send(_WAKE_DATAGRAM)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
