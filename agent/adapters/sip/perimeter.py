"""Who gets in, on the SIP side: the request gate, the proxy's addresses, and their lookups.

Ties agent.core.gate (the decisions), agent.adapters.sip.gate (the pjsip module), agent.core.trust
(the proxy's addresses) and agent.adapters.sip.resolver (host names looked up off the owner thread)
together for the SIP adapter. Owner thread, except the lookups' own thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pjsua2 as pj

from agent.adapters.sip.gate import GateUnavailable, RequestGate
from agent.adapters.sip.resolver import HostLookup
from agent.config.model import SipConfig
from agent.core.budget import TokenBucket
from agent.core.counters import Counters
from agent.core.gate import Arrival, GatePolicy, Verdict
from agent.core.sipmsg import host_of
from agent.core.sipuri import parse_sip_uri
from agent.core.trust import Trust, as_network

if TYPE_CHECKING:
    from agent.adapters.sip.tcp import TcpGuard

log = logging.getLogger(__name__)

# The proxy's host names are looked up again after a registration at most this often.
LOOKUP_EVERY_S = 300.0


class Perimeter:
    def __init__(
        self,
        config: SipConfig,
        counters: Counters,
        wake: Callable[[], None],
        more_accounts: tuple[SipConfig, ...] = (),
    ) -> None:
        # Every account's registrar and proxy are "the proxy": requests come through any.
        accounts = (config, *more_accounts)
        self._hosts = list(dict.fromkeys(h for a in accounts for h in proxy_hosts(a)))
        self.trust = Trust(h for h in self._hosts if as_network(h) is not None)
        strangers = TokenBucket(config.limits.stranger_answers_per_s)
        self.policy = GatePolicy(config, counters, self.trust, strangers)
        # The kernel filter guards one listener: the first account on TCP/TLS
        # (agent.adapters.sip.stack). Over UDP alone there are no connections to guard, and
        # the guard (pjsip's transport layout, the kernel filter) is not even imported.
        tcp = next((a for a in accounts if a.transport != "udp"), None)
        self.tcp: TcpGuard | None = None
        if tcp is not None:
            from agent.adapters.sip.tcp import TcpGuard

            self.tcp = TcpGuard(tcp, counters, self.trust, self.policy.only_proxy)
        self._gate = RequestGate(self._decide, counters)
        self._lookup = HostLookup(wake)
        self._looked_up_at = -LOOKUP_EVERY_S
        self._by_pjsip: set[str] = set()  # names agent.adapters.sip.hops looks up (and reports)

    @property
    def gate_on(self) -> bool:
        """Every request is judged by the gate before pjsua sees it."""
        return self._gate.active

    def start(self, probe_to: tuple[str, int], poll: Callable[[int], None], port: int) -> None:
        """After libStart: the gate in front of pjsua, the filter on the TCP listener at
        `port`, and the proxy's names looked up."""
        if self.tcp:
            self.tcp.start(port)
        try:
            self._gate.install()
            self._gate.calibrate(probe_to, poll)
        except GateUnavailable as err:
            self._gate.close()
            log.error(
                "request gate off: %s. Unprotected: routed mode takes requests from anyone, "
                "SUBSCRIBE is not bounded, calls.action does not run (INVITEs get 486)",
                err,
            )
        else:
            mode = "only from the proxy" if self.policy.only_proxy else "from anyone"
            log.info("request gate on: requests taken %s", mode)
        self._look_up()

    def registered(self, source: str) -> None:
        """Our REGISTER was answered from `source` ("host:port"): that is the proxy."""
        self.trust.learn(host_of(source))
        if time.monotonic() - self._looked_up_at >= LOOKUP_EVERY_S:
            self._look_up()

    def resolved_by_pjsip(self, host: str) -> None:
        """`host` is looked up through pjsip's resolver (its SRV targets too): not here."""
        self._by_pjsip.add(host)

    def found(self, host: str, addresses: set[str]) -> None:
        """The provider's servers behind `host` are at `addresses` (all its SRV targets)."""
        self.trust.resolved(host, addresses)
        log.debug("the proxy %s is at %s", host, ", ".join(sorted(addresses)))
        if self.tcp:
            self.tcp.refresh()

    def on_transport_state(self, prm: pj.OnTransportStateParam) -> bool:
        """Count the change; True for a connection someone else opened to us."""
        return self.tcp.on_state(prm) if self.tcp else False

    def after_poll(self, shutdown: Callable[[object], None]) -> None:
        """Owner thread, outside pjsua's callbacks: `shutdown` closes a transport."""
        for host, addresses in self._lookup.take():
            self.trust.resolved(host, addresses)
            log.debug("the proxy %s is at %s", host, ", ".join(sorted(addresses)))
        if self.tcp:
            self.tcp.after_poll(shutdown)

    def close(self) -> None:
        """Before libDestroy."""
        self._gate.close()
        if self.tcp:
            self.tcp.close()

    def _decide(self, arrival: Arrival) -> Verdict:
        if self.tcp:
            self.tcp.saw_request(arrival.transport)
        return self.policy.decide(arrival)

    def _look_up(self) -> None:
        names = [h for h in self._hosts if as_network(h) is None and h not in self._by_pjsip]
        if names and self._lookup.start(names):
            self._looked_up_at = time.monotonic()


def proxy_hosts(config: SipConfig) -> list[str]:
    """The hosts routed mode takes requests from: registrar, proxy, and `sip.trusted`."""
    hosts = [parse_sip_uri(u).host for u in (config.registrar, config.proxy) if u]
    return [h.strip("[]") for h in hosts] + list(config.trusted)
