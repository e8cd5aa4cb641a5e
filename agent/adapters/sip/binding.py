"""The pjsua2 binding in use: which pjproject, and what it can do (agent.core.capabilities)."""

from __future__ import annotations

import pjsua2 as pj

from agent.core.capabilities import Capabilities


def detect() -> Capabilities:
    """The running endpoint's capabilities; call after the endpoint is initialised."""
    ep = pj.Endpoint.instance()
    try:
        tls = bool(ep.utilSslGetAvailableCiphers())
    except pj.Error:
        tls = False  # built without an SSL backend
    return Capabilities(ep.libVersion().full, hasattr(pj, "DeferredResponse"), tls)
