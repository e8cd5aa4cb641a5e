"""[sip.limits]: the bounds on what strangers can make the agent do (README "Threat model").

A table of its own so that the config model (agent.config.model) stays one page of types; the
loader is agent.config.perimeter, the users agent.core.gate, agent.adapters.sip.presence,
agent.adapters.sip.tcp.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SipLimitsConfig:
    """[sip.limits]: what strangers can make the agent do (README "Threat model")."""

    watchers: int = 128  # live presence subscriptions in total (serve mode)
    watchers_per_sender: int = 8  # ... per address of record
    subscribe_per_s: int = 20  # SUBSCRIBEs taken per second (bursts of twice that)
    # Answers to senders who are not configured (refusals, `error: forbidden` replies,
    # answers to OPTIONS and other requests outside a dialog): per second, bursts of twice.
    stranger_answers_per_s: int = 5
    presence_per_s: int = 5  # presence changes sent out per second; later ones coalesce
    tcp_connections_per_ip: int = 8  # open incoming TCP/TLS connections from one address
    tcp_idle_s: int = 30  # an incoming connection that sends no request for this long closes
