"""Reading who the SIP side takes requests from and its limits: `sip.accept_from`,
`sip.trusted` and `[sip.limits]` (README "Threat model")."""

from __future__ import annotations

from agent.config.model import SipLimitsConfig
from agent.config.table import Table, is_host
from agent.core.trust import as_network

# Incoming TCP/TLS connections share pjsip's 64 ioqueue slots with everything else.
MAX_CONNECTIONS_PER_IP = 32


def read_accept(t: Table, routed: bool) -> tuple[str, tuple[str, ...]]:
    """`sip.accept_from` and `sip.trusted` (addresses, networks, host names)."""
    accept_from = t.choice("accept_from", ("proxy", "anyone"), "proxy" if routed else "anyone")
    if accept_from == "proxy" and not routed and "accept_from" in t.raw:
        t.problem("accept_from", "'proxy' needs sip.registrar or sip.proxy (direct mode)")
    trusted: list[str] = []
    for where, text in t.texts("trusted"):
        if as_network(text) is None and not is_host(text):
            t.problems.append(f"{where}: {text!r} is not an address, a network or a host name")
            continue
        trusted.append(text)
    if trusted and not routed:
        t.problem("trusted", "only routed mode (sip.registrar or sip.proxy) has a proxy to trust")
    return accept_from, tuple(trusted)


def read_limits(t: Table) -> SipLimitsConfig:
    d = SipLimitsConfig()
    limits = SipLimitsConfig(
        watchers=t.integer("watchers", d.watchers, 1, 10000),
        watchers_per_sender=t.integer("watchers_per_sender", d.watchers_per_sender, 1, 10000),
        subscribe_per_s=t.integer("subscribe_per_s", d.subscribe_per_s, 1, 10000),
        stranger_answers_per_s=t.integer(
            "stranger_answers_per_s", d.stranger_answers_per_s, 0, 10000
        ),
        presence_per_s=t.integer("presence_per_s", d.presence_per_s, 1, 1000),
        tcp_connections_per_ip=t.integer(
            "tcp_connections_per_ip", d.tcp_connections_per_ip, 1, MAX_CONNECTIONS_PER_IP
        ),
        tcp_idle_s=t.integer("tcp_idle_s", d.tcp_idle_s, 1, 3600),
    )
    t.finish()
    return limits
