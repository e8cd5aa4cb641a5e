"""The network side of the pjsua2 adapter: TLS settings, NAT settings, and recovery.

Everything here runs on the owner thread. The decisions (when to register again, what the server
saw) are in `agent.core.registration`; this module turns them into pjsua2 calls and log lines.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import pjsua2 as pj

from agent.adapters.sip.netwatch import RouteWatch
from agent.adapters.sip.perimeter import Perimeter
from agent.config.model import SipConfig
from agent.core.registration import Action, Attempt, Backoff, Keeper, RegState, public_address
from agent.core.sipuri import DEFAULT_PORTS, parse_sip_uri
from agent.core.srv import is_server_failure

if TYPE_CHECKING:
    from agent.adapters.sip.hops import NextHop

log = logging.getLogger(__name__)

# pjsua's "always follow the server's view" (2): its default (1) ignores a port-only change
# of the mapping when the server reports a private address (pjproject #864), which is exactly
# what a home router behind a carrier-grade NAT, or a router that picked a new port, produces.
CONTACT_REWRITE_ALWAYS = 2
# How often the local route is looked at (a socket call, no traffic).
ROUTE_CHECK_S = 2.0

_TLS_REASONS = (
    (pj.PJ_SSL_CERT_EISSUER_NOT_FOUND, "unknown CA (its issuer is not in sip.tls.ca_file)"),
    (pj.PJ_SSL_CERT_EUNTRUSTED, "unknown CA (self-signed, or signed by a CA not trusted here)"),
    (pj.PJ_SSL_CERT_EVALIDITY_PERIOD, "expired or not yet valid"),
    (pj.PJ_SSL_CERT_EIDENTITY_NOT_MATCH, "wrong host (the certificate names another server)"),
    (pj.PJ_SSL_CERT_EREVOKED, "revoked"),
    (pj.PJ_SSL_CERT_EINVALID_PURPOSE, "not meant for a TLS server"),
    (pj.PJ_SSL_CERT_EISSUER_MISMATCH, "issuer mismatch"),
    (pj.PJ_SSL_CERT_ECHAIN_TOO_LONG, "certificate chain too long"),
    (pj.PJ_SSL_CERT_EWEAK_SIGNATURE, "weak signature"),
    (pj.PJ_SSL_CERT_EINVALID_FORMAT, "malformed certificate"),
)


def tls_refusal_reason(verify_status: int, messages: list[str] | tuple[str, ...]) -> str:
    """Why a server certificate did not verify, in words a user can act on."""
    reasons = [text for flag, text in _TLS_REASONS if verify_status & flag]
    if not reasons:
        reasons = [m for m in messages if m] or [f"verification status {verify_status:#x}"]
    return "; ".join(reasons)


def transport_config(config: SipConfig) -> pj.TransportConfig:
    """The listening transport, with the TLS settings for a TLS one."""
    tc = pj.TransportConfig()
    tc.port = config.listen_port
    if config.listen_host not in ("0.0.0.0", "", "[::]", "::"):
        tc.boundAddress = config.listen_host.strip("[]")
    if config.transport == "tls":
        tls = config.tls
        tc.tlsConfig.CaListFile = tls.ca_file or ""
        tc.tlsConfig.verifyServer = tls.verify
        tc.tlsConfig.certFile = tls.cert_file or ""
        tc.tlsConfig.privKeyFile = tls.key_file or ""
        # TLS 1.2 at least; SSLV23 lets OpenSSL pick the best both sides speak.
        tc.tlsConfig.method = pj.PJSIP_SSLV23_METHOD
        # A connection that never finishes its handshake holds one of pjsip's 64 I/O slots
        # unseen by the connection guard (agent.adapters.sip.tcp): give it as long as an idle one.
        tc.tlsConfig.msecTimeout = config.limits.tcp_idle_s * 1000
    return tc


def apply_stun(ep_config: pj.EpConfig, config: SipConfig) -> None:
    if config.nat.stun:
        ep_config.uaConfig.stunServer.append(config.nat.stun)
        # A STUN server that does not answer must not keep the agent from starting.
        ep_config.uaConfig.stunIgnoreFailure = True


def apply_nat(ac: pj.AccountConfig, config: SipConfig) -> None:
    """rport and Via/Contact rewriting, keep-alives, STUN and SIP outbound for the account."""
    nat = config.nat
    ac.natConfig.contactRewriteUse = CONTACT_REWRITE_ALWAYS if nat.rewrite else 0
    ac.natConfig.viaRewriteUse = 1 if nat.rewrite else 0
    # pjsua sends rport in every Via; the server's answer (received/rport) is what we rewrite to.
    ac.natConfig.udpKaIntervalSec = nat.keepalive_s
    ac.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DEFAULT if nat.stun else pj.PJSUA_STUN_USE_DISABLED
    ac.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED  # no media in a messaging agent
    ac.natConfig.sipOutboundUse = 1 if nat.outbound else 0
    if config.registrar:
        # We schedule every retry ourselves (agent.core.registration): pjsua's own retry would wait
        # retryIntervalSec after a failed refresh and compete with ours.
        ac.regConfig.retryIntervalSec = 0
        ac.regConfig.firstRetryIntervalSec = 0


class Registrar(Protocol):
    """What recovery needs from the account (pjsua2's Account)."""

    def setRegistration(self, renew: bool) -> None: ...


class Reroutable(Registrar, Protocol):
    def modify(self, config: pj.AccountConfig) -> None: ...


def transport_trouble(prm: pj.OnTransportStateParam) -> str | None:
    """Log a closed connection; for a refused TLS certificate, return why (for the status)."""
    if prm.state != pj.PJSIP_TP_STATE_DISCONNECTED:
        return None
    info = prm.tlsInfo
    if not info.isEmpty() and info.verifyStatus:
        # pjsip already closed the connection: nothing was sent to this server.
        why = tls_refusal_reason(info.verifyStatus, list(info.verifyMsgs))
        refusal = f"TLS certificate of {info.remoteAddr} refused: {why}"
        log.error("%s", refusal)
        return refusal
    reason = pj.Endpoint.instance().utilStrError(prm.lastError) if prm.lastError else "closed"
    log.warning("SIP connection closed (%s)", reason)
    return None


def hop_host(config: SipConfig) -> tuple[str, bool] | None:
    """(host name, is an SRV domain) of the next hop, or None for an IP address / no hop.

    RFC 3263 4.2: a name without a port or `maddr` has SRV records that name the servers
    (agent.adapters.sip.hops)."""
    uri_text = config.proxy or config.registrar
    if not uri_text:
        return None
    uri = parse_sip_uri(uri_text)
    host = uri.host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        srv = uri.port is None and not any(k == "maddr" for k, _ in uri.params)
        return host, srv
    return None


class Recovery:
    """Keeps the account registered: retries with backoff, periodic checks, route changes.

    `report(state)` announces the steps that have no REGISTER answer of their own. With a
    `hop` (a registrar or proxy given by name, agent.adapters.sip.hops), the first REGISTER waits
    for its SRV records, and a REGISTER that finds no server moves to the next target at once.
    """

    def __init__(
        self, config: SipConfig, report: Callable[[RegState], None], hop: NextHop | None = None
    ) -> None:
        rc = config.recovery
        self.keeper = Keeper(Backoff(rc.retry_min_s, rc.retry_max_s), rc.check_s)
        self._report_state = report
        self.tls_refusal = ""  # why the last server certificate was refused, for the status
        self.uri = config.uri
        self._route: RouteWatch | None = None
        self._next_route_check = 0.0
        if config.registrar:
            uri = parse_sip_uri(config.registrar)
            port = uri.port or DEFAULT_PORTS["sips" if config.transport == "tls" else "sip"]
            self._route = RouteWatch(uri.host, port)
            self._route.changed(time.monotonic())  # the starting point, not a change
        self.hop = hop
        self._account: Reroutable | None = None
        self._reroute: Callable[[str | None], object] = lambda _route: None
        # The perimeter hears the provider's addresses too (set by the SIP adapter).
        self.trust_found: Callable[[str, set[str]], None] = lambda _host, _addresses: None
        if hop is not None:
            hop.found = self._found
            hop.failed_lookup = self._lookup_failed

    @classmethod
    def create(
        cls, config: SipConfig, report: Callable[[RegState], None], perimeter: Perimeter
    ) -> Recovery:
        """After libStart (pjsip's resolver exists then); the perimeter hears of the
        provider's addresses."""
        hop = None
        name = hop_host(config)
        if name is not None and config.nameservers != ():
            # A name, and pjsip has a resolver: the SRV and DNS machinery is imported for
            # it alone. Over an IP address the agent never loads it.
            from agent.adapters.sip.hops import NextHop

            hop = NextHop(config, *name)
            if not hop.start():
                hop = None
        recovery = cls(config, report, hop)
        if hop is not None:
            perimeter.resolved_by_pjsip(hop.host)
        recovery.trust_found = perimeter.found
        return recovery

    @property
    def waits_for_dns(self) -> bool:
        """The first REGISTER waits for the SRV records (the account is added without)."""
        return self.hop is not None and self.hop.srv

    def begin(
        self, now: float, account: Reroutable, reroute: Callable[[str | None], object]
    ) -> None:
        """The account exists: its first REGISTER went out, or (SRV) waits for the records.
        `reroute(route)` is the account's config through that route
        (agent.adapters.sip.settings)."""
        self._account = account
        self._reroute = reroute
        if self.hop is not None:
            self.hop.pin = self._pin
        if self.waits_for_dns:
            assert self.hop is not None
            self.hop.resolve(now)
        else:
            self.keeper.started()

    def close(self) -> None:
        if self.hop is not None:
            self.hop.close()

    def _pin(self, route: str | None) -> None:
        """Route the account through `route` (an SRV target): pjsua REGISTERs through it."""
        if self._account is None:
            return
        try:
            self._account.modify(self._reroute(route))
        except pj.Error as err:
            log.warning("cannot route through %s: %s", route, err.info())
            return
        self.keeper.started()
        if self.hop is not None:
            self.hop.sent_at = time.monotonic()

    def _found(self, host: str, addresses: set[str]) -> None:
        self.trust_found(host, addresses)
        route = self._route
        if route is None or not addresses:
            return
        current = self.hop.hops.current if self.hop is not None else None
        preferred = [a for a in (current.addresses if current else ()) if a in addresses]
        port = current.port if current else None
        route.aim(preferred[0] if preferred else sorted(addresses)[0], port)
        route.changed(time.monotonic())  # a new starting point, not a change of network

    def _lookup_failed(self, why: str) -> None:
        attempt = self.keeper.failed(time.monotonic(), why)
        log.warning("%s; trying again in %.1fs", why, attempt.delay_s)
        self._report(attempt)

    def on_result(self, state: RegState, response: str) -> RegState:
        """A REGISTER's outcome: note the public address, or schedule the retry."""
        now = time.monotonic()
        if self.hop is not None:
            self.hop.sent_at = None
        if state.state == "registered":
            if self.hop is not None and self.hop.pinned:
                self.hop.hops.succeeded()
                state = replace(state, server=self.hop.hops.current.hostport)  # type: ignore[union-attr]
            note = self.keeper.registered(now, public_address(response) if response else None)
            if note:
                log.warning("registration of %s: %s", self.uri, note)
            return replace(state, public=self.keeper.public or "")
        if state.state == "unregistered":
            self.keeper.unregistered()  # on purpose (shutdown): nothing more to schedule
            return state
        if state.state != "failed":
            return state
        if self.tls_refusal:
            # pjsip's words ("SSL certificate verification error") say less than ours.
            state = replace(state, reason=self.tls_refusal)
            self.tls_refusal = ""
        if self.hop is not None and is_server_failure(state.code):
            target = self.hop.failover(f"{state.code} {state.reason}")
            if target is not None:
                return replace(
                    state,
                    state="registering",
                    reason=f"{state.code} {state.reason}; trying {target.hostport}",
                    attempt=self.keeper.failures,
                )
        attempt = self.keeper.failed(now, f"{state.code} {state.reason}")
        return replace(state, retry_in_s=attempt.delay_s, attempt=attempt.failures)

    def connection_lost(self, now: float) -> None:
        """The TCP/TLS connection to the server closed: register again over a new one."""
        if self.keeper.in_flight or self.keeper.retry_pending():
            return  # that REGISTER's failure already scheduled (or will schedule) the retry
        attempt = self.keeper.failed(now, "connection to the server closed")
        log.warning("%s; registering again in %.1fs", attempt.why, attempt.delay_s)
        self._report(attempt)

    def _report(self, attempt: Attempt) -> None:
        if attempt.delay_s > 0:
            state = RegState("failed", 0, attempt.why, 0, "", attempt.delay_s, attempt.failures)
        else:
            state = RegState("registering", 0, attempt.why, 0, attempt=attempt.failures)
        self._report_state(state)

    def tick(self, now: float, account: Registrar | None) -> None:
        """Called after every poll: look at the route, then do what is due."""
        if account is None:
            return
        hop = self.hop
        if hop is not None and hop.pinned and hop.refresh_due(now):
            hop.resolve(now)  # the records' TTL may have run out: pjsip's cache knows
        if hop is not None and hop.overdue(now):
            self._report_state(self.on_result(RegState("failed", 408, "no answer", 0), ""))
        if self._route is not None and now >= self._next_route_check:
            self._next_route_check = now + ROUTE_CHECK_S
            change = self._route.changed(now)
            if change is not None:
                self._on_route_change(now, *change)
        action = self.keeper.due(now)
        if action is not None:
            self._register(now, account, action)

    def _on_route_change(self, now: float, old: str | None, new: str | None) -> None:
        if new is None:
            log.warning("network: no route to the registrar any more (was via %s)", old)
            # Nothing to send on; the route coming back registers at once.
            self._report_state(RegState("failed", 0, "network down: no route to the registrar", 0))
            return
        why = "network back" if old is None else f"local address changed from {old} to {new}"
        log.warning("network: %s; registering again at once", why)
        self._report(self.keeper.link_changed(now, why))

    def _register(self, now: float, account: Registrar, action: Action) -> None:
        hop = self.hop
        if hop is not None and hop.srv and hop.hops.needs_lookup(now):
            # No targets yet, or every one failed: look them up again; the answer pins the
            # best one, which registers (or, unchanged, the REGISTER below goes to it).
            hop.resolve(now)
            if not hop.pinned or self.keeper.in_flight:
                return  # the answer comes later, or it re-routed the account (REGISTERing)
        if hop is not None and hop.repin():
            return  # back to the best target after a round of failures: that REGISTERs
        try:
            account.setRegistration(True)
        except pj.Error as err:
            # E.g. no route at all: that is a failed attempt like any other.
            attempt = self.keeper.failed(now, f"cannot send REGISTER: {err.reason}")
            log.warning("%s; next try in %.1fs", attempt.why, attempt.delay_s)
            self._report(attempt)
            return
        self.keeper.started()
        if hop is not None and hop.pinned:
            hop.sent_at = now
        failures = self.keeper.failures
        if action is Action.REGISTER and failures:
            log.info("registering again (attempt %d)", failures + 1)
            self._report(Attempt(failures, 0.0, f"attempt {failures + 1}"))
        elif action is Action.REGISTER:
            log.info("registering again")
        else:
            log.debug("periodic registration check")
