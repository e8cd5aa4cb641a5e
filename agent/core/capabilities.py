"""Which pjproject the agent runs on, and which of its capabilities the agent can use.

The PyPI wheel is pjproject 2.15; a binding the user provides may be newer (docs/pjsip.md).
The SIP adapter finds out (agent.adapters.sip.binding); this says what it means. Pure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.core.logfields import journal_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capabilities:
    pjproject: str  # e.g. "2.15.1"
    deferred_responses: bool  # pjproject 2.16+: a MESSAGE is answered after it is stored
    tls: bool  # the binding was built with an SSL backend

    def summary(self) -> str:
        deferred = (
            "yes (MESSAGE answered after it is stored)"
            if self.deferred_responses
            else "no (pjsua answers 200 before the agent sees a MESSAGE; 2.16+ can defer)"
        )
        return (
            f"pjproject {self.pjproject}; deferred MESSAGE responses: {deferred}; "
            f"TLS: {'yes' if self.tls else 'no'}"
        )


def log_capabilities(caps: Capabilities) -> Capabilities:
    """Say at start what the binding can do, so that a log says what behaviour to expect."""
    log.info(
        "%s",
        caps.summary(),
        extra=journal_fields(
            pjproject_version=caps.pjproject,
            pjsua2_deferred_responses=int(caps.deferred_responses),
            pjsua2_tls=int(caps.tls),
        ),
    )
    return caps
