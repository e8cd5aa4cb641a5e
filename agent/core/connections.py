"""Incoming TCP/TLS connections, counted against pjsip's 64 ioqueue slots. Pure.

Every open connection holds a slot; a closed one keeps it for another half second
(pjlib's safe unregistration). When opens and closes churn faster than that, the free list
runs dry while the count still looks fine, and pjlib asserts: the process aborts (58
connections opened and closed twice within a second did it on 2.15.1). So:

- at most `per_ip` open incoming connections from one address (the proxy's excepted);
- an incoming connection that has sent no request for `idle_s` is closed;
- when open plus recently closed connections reach BREAKER_AT, the breaker trips: the
  listening socket takes no new connection (agent.adapters.sip.tcp drops the SYNs in the kernel)
  until they are back under BREAKER_OFF.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# pjlib frees a slot PJ_IOQUEUE_KEY_FREE_DELAY (500 ms) after its socket closed; counted
# twice as long to be sure.
SLOT_HELD_S = 1.0
# Of 64 slots: the SIP listener, the wake socket, a TLS listener, the registration's own
# connection, and a margin for what the kernel had queued before the breaker tripped.
BREAKER_AT = 40
BREAKER_OFF = 30


@dataclass
class _Connection:
    """One TCP/TLS connection the guard keeps track of."""

    ip: str
    incoming: bool
    trusted: bool
    last_active: float


class Connections:
    def __init__(
        self, per_ip: int, idle_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_ip = per_ip
        self.idle_s = idle_s
        self._clock = clock
        self._open: dict[int, _Connection] = {}
        self._closed_at: deque[float] = deque()
        self.tripped = False

    def opened(self, handle: int, ip: str, *, incoming: bool, trusted: bool) -> bool:
        """A connection opened; False when it must be closed at once (over `per_ip`)."""
        self._open[handle] = _Connection(ip, incoming, trusted, self._clock())
        if not incoming or trusted:
            return True
        same = sum(1 for c in self._open.values() if c.incoming and c.ip == ip)
        return same <= self.per_ip

    def request(self, handle: int) -> None:
        """A request arrived on `handle`: it is not idle."""
        connection = self._open.get(handle)
        if connection is not None:
            connection.last_active = self._clock()

    def closed(self, handle: int) -> None:
        if self._open.pop(handle, None) is not None:
            self._closed_at.append(self._clock())

    def idle(self) -> list[int]:
        """Incoming connections from strangers that have been quiet for `idle_s`."""
        now = self._clock()
        return [
            h
            for h, c in self._open.items()
            if c.incoming and not c.trusted and now - c.last_active >= self.idle_s
        ]

    def slots(self) -> int:
        """Open connections plus the ones closed too recently to have freed their slot."""
        now = self._clock()
        while self._closed_at and now - self._closed_at[0] >= SLOT_HELD_S:
            self._closed_at.popleft()
        return len(self._open) + len(self._closed_at)

    def breaker(self) -> bool:
        """Whether new connections must be kept out now (with hysteresis)."""
        used = self.slots()
        if self.tripped and used < BREAKER_OFF:
            self.tripped = False
        elif not self.tripped and used >= BREAKER_AT:
            self.tripped = True
        return self.tripped
