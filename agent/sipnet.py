"""The network side of the pjsua2 adapter: TLS settings, NAT settings, and recovery.

Everything here runs on the owner thread. The decisions (when to register again, what the
server saw) are in `agent.registration`; this module turns them into pjsua2 calls and log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import pjsua2 as pj

from agent.config import SipConfig
from agent.netwatch import RouteWatch
from agent.registration import Action, Attempt, Backoff, Keeper, RegState, public_address
from agent.sipuri import DEFAULT_PORTS, parse_sip_uri

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
        # We schedule every retry ourselves (agent.registration): pjsua's own retry would wait
        # retryIntervalSec after a failed refresh and compete with ours.
        ac.regConfig.retryIntervalSec = 0
        ac.regConfig.firstRetryIntervalSec = 0


def account_config(config: SipConfig, transport_id: int) -> pj.AccountConfig:
    """The account's pjsua2 configuration: identity, routing, credentials, media, NAT."""
    c = config
    ac = pj.AccountConfig()
    ac.idUri = c.uri
    ac.sipConfig.transportId = transport_id
    proxy = c.proxy or (_loose_route(c.registrar) if c.registrar else None)
    if proxy:
        ac.sipConfig.proxies.append(_with_transport(proxy, c.transport))
    if c.registrar:
        ac.regConfig.registrarUri = _with_transport(c.registrar, c.transport)
        ac.regConfig.timeoutSec = c.reg_expires
    # pjsua opens RTP sockets for every incoming INVITE before the agent can reject it.
    # No audio is ever sent: keep them on loopback, on any free port (default: 4000 on
    # every interface, where a taken port costs an error line per call).
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    ac.mediaConfig.transportConfig.port = 0
    if c.password is not None:
        cred = pj.AuthCredInfo("digest", c.realm, c.username, 0, c.password)
        ac.sipConfig.authCreds.append(cred)
    # pjsua PUBLISHes only after setOnlineStatus, and again after each re-registration
    # that finds its publication gone (see agent.sip_presence).
    ac.presConfig.publishEnabled = c.presence == "publish"
    apply_nat(ac, c)
    return ac


def _with_transport(uri: str, transport: str) -> str:
    """`uri` with a transport parameter for TCP/TLS.

    pjsua derives the Contact's transport from the registrar/proxy URI, not from the
    transport the account is bound to: without it a TCP account registers a UDP Contact.
    """
    parsed = parse_sip_uri(uri)
    if transport == "udp" or any(k == "transport" for k, _ in parsed.params):
        return uri
    return f"{uri};transport={transport}"


def _loose_route(uri: str) -> str:
    """The registrar as an outbound proxy: without it an account's domain must resolve."""
    parsed = parse_sip_uri(uri)
    host = f"{parsed.scheme}:{parsed.hostport}"
    params = "".join(f";{k}={v}" if v is not None else f";{k}" for k, v in parsed.params)
    return host + params + ("" if any(k == "lr" for k, _ in parsed.params) else ";lr")


class Registrar(Protocol):
    """What recovery needs from the account (pjsua2's Account)."""

    def setRegistration(self, renew: bool) -> None: ...


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


class Recovery:
    """Keeps the account registered: retries with backoff, periodic checks, route changes.

    `report(state)` announces the steps that have no REGISTER answer of their own.
    """

    def __init__(self, config: SipConfig, report: Callable[[RegState], None]) -> None:
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

    def on_result(self, state: RegState, response: str) -> RegState:
        """A REGISTER's outcome: note the public address, or schedule the retry."""
        now = time.monotonic()
        if state.state == "registered":
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
        try:
            account.setRegistration(True)
        except pj.Error as err:
            # E.g. no route at all: that is a failed attempt like any other.
            attempt = self.keeper.failed(now, f"cannot send REGISTER: {err.reason}")
            log.warning("%s; next try in %.1fs", attempt.why, attempt.delay_s)
            self._report(attempt)
            return
        self.keeper.started()
        failures = self.keeper.failures
        if action is Action.REGISTER and failures:
            log.info("registering again (attempt %d)", failures + 1)
            self._report(Attempt(failures, 0.0, f"attempt {failures + 1}"))
        elif action is Action.REGISTER:
            log.info("registering again")
        else:
            log.debug("periodic registration check")
