"""The provider's servers in use: SRV lookups, the pinned target, failover. Owner thread.

When the registrar (or the proxy, if there is one) is a domain name without a port, RFC 3263 says
its SRV records name the servers. pjsip would look them up itself, but it keeps to the first target
when that one stops answering (docs/pjsip.md), so the agent looks them up (agent.adapters.sip.dns,
through pjsip's resolver), routes through one target (the account's outbound proxy becomes
`sip:<target>:<port>;lr`; the registrar URI stays the domain), and moves to the next when a REGISTER
fails for want of a server (agent.core.srv decides). Every target's addresses count as the
provider's for the perimeter (agent.core.trust): after a failover the second server's requests are
taken, and the first's too (it may still deliver to a binding of ours until that expires).

A name with a port (or when `sip.nameservers = []`) is not an SRV domain: it is still looked
up (A/AAAA, after an SRV query finds nothing), for the perimeter and the route watch only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.adapters.sip.dns import DnsUnavailable, SrvLookup
from agent.config.model import SipConfig
from agent.core.srv import GIVE_UP_S, Hops, SrvTarget

log = logging.getLogger(__name__)


class NextHop:
    """`found(domain, addresses)` hears every answer (for the perimeter and route watch);
    `pin(route)` re-routes the account through a target (None: as configured)."""

    def __init__(self, config: SipConfig, host: str, srv: bool) -> None:
        self.config = config
        self.host = host
        self.srv = srv
        self.hops = Hops(host)
        self.lookup = SrvLookup()
        self.found: Callable[[str, set[str]], None] = lambda _h, _a: None
        self.pin: Callable[[str | None], None] = lambda _route: None
        self.failed_lookup: Callable[[str], None] = lambda _why: None
        self.sent_at: float | None = None  # when our REGISTER to the current target left
        self.route: str | None = None  # the route the account uses now (None: as configured)
        self._now = 0.0

    def start(self) -> bool:
        """After libStart. False when pjsip has no resolver (the name is pjsip's alone)."""
        try:
            self.lookup.start()
        except DnsUnavailable as err:
            log.warning("%s: %s is looked up by pjsip alone (no failover)", err, self.host)
            return False
        return True

    def close(self) -> None:
        self.lookup.close()

    # -- what recovery asks -------------------------------------------------------------

    @property
    def pinned(self) -> bool:
        """An SRV domain whose targets are known: REGISTERs go to `hops.current`."""
        return self.srv and self.hops.current is not None

    def resolve(self, now: float) -> None:
        """Ask for the records (answered at once from pjsip's cache, or in a later poll)."""
        if self.lookup.busy:
            return
        self._now = now
        self.lookup.lookup(self.host, self.config.transport, self._answered)

    def refresh_due(self, now: float) -> bool:
        return not self.lookup.busy and self.hops.needs_lookup(now)

    def overdue(self, now: float) -> bool:
        """Our REGISTER to one of several targets went unanswered too long."""
        return (
            self.pinned
            and len(self.hops.targets) > 1
            and self.sent_at is not None
            and now - self.sent_at > GIVE_UP_S
        )

    def failover(self, why: str) -> SrvTarget | None:
        """The current target failed: pin the next (returned), or None after a full round."""
        self.sent_at = None
        if not self.pinned:
            return None
        failed = self.hops.current
        target = self.hops.failed()
        if target is None:
            log.warning("no server of %s answered (last: %s, %s)", self.host, failed, why)
            return None
        assert failed is not None
        log.warning(
            "SIP server %s (%s) failed: %s; trying %s",
            failed.hostport, self.host, why, target.hostport,
        )  # fmt: skip
        self._pin(target)
        return target

    def repin(self) -> bool:
        """Route through the current target if the account does not yet; True if that
        re-routed it (which REGISTERs)."""
        target = self.hops.current
        if not self.srv or target is None or self.route == self.route_of(target):
            return False
        self._pin(target)
        return True

    def _pin(self, target: SrvTarget) -> None:
        self.route = self.route_of(target)
        self.pin(self.route)

    def route_of(self, target: SrvTarget) -> str:
        transport = "" if self.config.transport == "udp" else f";transport={self.config.transport}"
        return f"sip:{target.hostport};lr{transport}"

    # -- the answer -----------------------------------------------------------------------

    def _answered(self, targets: list[SrvTarget] | None, why: str) -> None:
        if targets is None:
            log.warning("cannot look up %s: %s", self.host, why)
            if self.srv and self.hops.current is None:
                self.failed_lookup(f"cannot resolve {self.host}: {why}")
            else:
                self.hops.resolved(self._now, self.hops.targets)  # keep what we had, ask later
            return
        self.found(self.host, {a for t in targets for a in t.addresses})
        if not self.srv:
            self.hops.resolved(self._now, targets)
            return
        change = self.hops.resolved(self._now, targets)
        if change is not None:
            listing = ", ".join(
                f"{t.hostport} (priority {t.priority}, weight {t.weight})"
                for t in self.hops.targets
            )
            log.info("SIP servers of %s: %s; using %s", self.host, listing, change.hostport)
            self._pin(change)
