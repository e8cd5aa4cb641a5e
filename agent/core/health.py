"""Whether the agent may ping systemd's watchdog: a pure decision, and its bookkeeping.

Pings come from the owner loop, so a loop that hangs stops them by itself. The agent can also
be alive and useless: a registration that keeps failing (a NAT mapping gone stale, a network
that changed under pjsip; a fresh start re-registers from scratch) or an outbox that stops
delivering. Past a grace period those stop the pings too, and systemd restarts the service.
`Health` runs on the owner thread; `verdict` decides without I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.core.record import record

log = logging.getLogger(__name__)

# Registration states in which the account is fine (sip.RegState.state).
_REGISTERED_STATES = frozenset({"registered", "direct"})


@record
class HealthPolicy:
    """How long each kind of trouble is tolerated before the pings stop."""

    registration_grace_s: float  # how long registration may fail before the pings stop
    outbox_stuck_s: float  # how long the outbox may hold work without delivering any
    loop_stall_s: float  # a loop turn older than this means the loop hangs


@record
class OutboxHealth:
    """What the outbox reports: queued records, and since when (monotonic) none moved."""

    depth: int
    stuck_since: float | None  # None: empty, or delivering
    trouble: str | None = None  # why events are not on disk now ("disk full"); None: they are
    in_memory: int = 0  # events held in memory meanwhile


# The outbox's hook: a callable the owner loop asks at every watchdog tick.
OutboxProbe = Callable[[], OutboxHealth]


@record
class Verdict:
    """Whether the watchdog may be pinged, and why not."""

    healthy: bool
    reason: str  # why not; "" when healthy


HEALTHY = Verdict(True, "")


def verdict(
    now: float,
    *,
    last_turn: float,
    registration_failing_since: float | None,
    outbox: OutboxHealth | None,
    policy: HealthPolicy,
) -> Verdict:
    """May the watchdog be pinged at `now` (monotonic seconds)? The first problem found wins."""
    stalled = now - last_turn
    if stalled > policy.loop_stall_s:
        return Verdict(False, f"owner loop last turned {stalled:.0f} s ago")
    if registration_failing_since is not None:
        failing = now - registration_failing_since
        if failing > policy.registration_grace_s:
            return Verdict(
                False,
                f"registration failing for {failing:.0f} s "
                f"(grace {policy.registration_grace_s:g} s)",
            )
    if outbox is not None and outbox.stuck_since is not None:
        stuck = now - outbox.stuck_since
        if stuck > policy.outbox_stuck_s:
            return Verdict(
                False,
                f"outbox stuck for {stuck:.0f} s with {outbox.depth} queued "
                f"(limit {policy.outbox_stuck_s:g} s)",
            )
    return HEALTHY


class Health:
    """The owner loop's view of its own health; every method runs on the owner thread."""

    def __init__(self, policy: HealthPolicy, now: float) -> None:
        self.policy = policy
        self.outbox_probe: OutboxProbe | None = None
        self._last_turn = now
        # Not registered yet counts as failing from the start: an agent that never manages
        # to register is as sick as one that lost it (before READY=1, TimeoutStartSec rules).
        self._failing_since: float | None = now
        self._last = HEALTHY

    def turned(self, now: float, registration_state: str) -> None:
        """Called on every loop turn with the current registration state."""
        self._last_turn = now
        if registration_state in _REGISTERED_STATES:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = now

    def outbox(self) -> OutboxHealth | None:
        return self.outbox_probe() if self.outbox_probe is not None else None

    def check(self, now: float) -> Verdict:
        """The verdict now; logs when health is lost or comes back."""
        result = verdict(
            now,
            last_turn=self._last_turn,
            registration_failing_since=self._failing_since,
            outbox=self.outbox(),
            policy=self.policy,
        )
        if result.healthy != self._last.healthy:
            if result.healthy:
                log.info("healthy again: watchdog pings resume")
            else:
                log.error("unhealthy: %s; watchdog pings stop, systemd restarts", result.reason)
        self._last = result
        return result

    def status_suffix(self) -> str:
        """Extra STATUS= text: the outbox depth (when there is an outbox) and any sickness."""
        parts = []
        outbox = self.outbox()
        if outbox is not None:
            parts.append(f"outbox {outbox.depth}")
            if outbox.trouble is not None:
                # Not a sickness for the watchdog: a restart cannot free a disk.
                parts.append(f"OUTBOX NOT DURABLE ({outbox.trouble}): {outbox.in_memory} in memory")
        if not self._last.healthy:
            parts.append(f"UNHEALTHY: {self._last.reason}")
        return "; ".join(parts)
