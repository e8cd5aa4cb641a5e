"""Which of a provider's servers to use: RFC 3263 and RFC 2782 decisions. Pure, no I/O.

A provider that publishes SRV records names several servers (targets), each with a priority
(lower first) and a weight (share of the load among equal priorities). The agent registers
at one; when it stops answering, the next; when all have failed in a row, it backs off and
looks the records up again. Records are looked up again when they may have changed (their
TTL runs out: pjsip's cache answers until then, so asking every `refresh_s` is free), and
the agent stays where it is as long as that server is still published: no flapping back.

NAPTR (RFC 3263 4.1) only picks a transport; here the owner's `sip.transport` does, so the
lookup starts at the SRV records for that transport (`_sip._udp.`, `_sip._tcp.`,
`_sips._tcp.`), which is where every NAPTR record of a SIP provider points.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from agent.core.record import record

# How often the records are asked for again (pjsip's cache answers until their TTL runs out).
REFRESH_S = 10.0
# A REGISTER to one of several targets that gets no answer this long counts as failed:
# pjsip would wait 32 s (Timer F); by now it has been sent 5 times over UDP.
GIVE_UP_S = 8.0
# Answers that say "this server cannot serve you now" (RFC 3263 4.3: try the next), and 0:
# pjsip's own failures (no answer, no connection, nothing sent).
SERVER_FAILURES = frozenset({0, 408, 500, 502, 503, 504})


@record
class SrvTarget:
    """One SRV target: host, port, priority, weight and its addresses."""

    name: str  # the host, lower case, no trailing dot
    port: int
    priority: int
    weight: int
    addresses: tuple[str, ...]  # as resolved (A and AAAA), may be empty

    @property
    def hostport(self) -> str:
        return f"{self.name}:{self.port}"


def rfc2782_order(targets: Sequence[SrvTarget], rand: Callable[[], float]) -> list[SrvTarget]:
    """Priorities ascending; within one, a weighted random order (RFC 2782's selection)."""
    ordered: list[SrvTarget] = []
    for priority in sorted({t.priority for t in targets}):
        group = [t for t in targets if t.priority == priority]
        # Zero weights first, as the RFC has them, so they are picked only rarely.
        group.sort(key=lambda t: t.weight != 0)
        while group:
            total = sum(t.weight for t in group)
            pick = rand() * total
            running = 0
            chosen = group[-1]
            for target in group:
                running += target.weight
                if total == 0 or running > pick:
                    chosen = target
                    break
            ordered.append(chosen)
            group.remove(chosen)
    return ordered


def is_server_failure(code: int) -> bool:
    return code in SERVER_FAILURES


class Hops:
    """The targets of one domain and the one in use. Times are `time.monotonic()` seconds."""

    def __init__(
        self, domain: str, refresh_s: float = REFRESH_S, rand: Callable[[], float] = random.random
    ) -> None:
        self.domain = domain
        self.refresh_s = refresh_s
        self._rand = rand
        self.targets: list[SrvTarget] = []
        self.index = 0
        self._failed_in_a_row = 0
        self._refresh_at: float | None = None

    @property
    def current(self) -> SrvTarget | None:
        return self.targets[self.index] if self.targets else None

    def addresses(self) -> set[str]:
        """Every address of every target: the provider's servers."""
        return {a for t in self.targets for a in t.addresses}

    def resolved(self, now: float, found: Sequence[SrvTarget]) -> SrvTarget | None:
        """New records. Returns the target to use when it changes, else None."""
        self._refresh_at = now + self.refresh_s
        current = self.current
        self.targets = rfc2782_order(found, self._rand)
        if current is not None:
            for i, target in enumerate(self.targets):
                if (target.name, target.port) == (current.name, current.port):
                    self.index = i  # still published: stay
                    return None
        self.index = 0
        self._failed_in_a_row = 0
        return self.current

    def failed(self) -> SrvTarget | None:
        """The current target did not answer: the next one, or None when every target has
        failed in a row (back off, then look up again and start from the best)."""
        if not self.targets:
            return None
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= len(self.targets):
            self._failed_in_a_row = 0
            self.index = 0
            self._refresh_at = None  # look the records up again before the next try
            return None
        self.index = (self.index + 1) % len(self.targets)
        return self.current

    def succeeded(self) -> None:
        self._failed_in_a_row = 0

    def needs_lookup(self, now: float) -> bool:
        """True when the records should be asked for (none yet, after a round of failures,
        or `refresh_s` after the last answer)."""
        return self._refresh_at is None or now >= self._refresh_at
