"""Where pjsip's DNS resolver sends its queries: `sip.nameservers`, else /etc/resolv.conf's
(agent.core.nameservers says which of them pjsip can use)."""

from __future__ import annotations

import logging

from agent.core.nameservers import LOCAL, from_resolv_conf

log = logging.getLogger(__name__)

RESOLV_CONF = "/etc/resolv.conf"


def system_nameservers(path: str = RESOLV_CONF) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return from_resolv_conf(file.read(), path)
    except OSError as err:
        log.warning("cannot read %s (%s): asking %s for names", path, err.strerror, LOCAL)
        return [LOCAL]


def choose(configured: tuple[str, ...] | None, path: str = RESOLV_CONF) -> list[str]:
    """What pjsip's resolver asks: the configured list, else the system's."""
    return list(configured) if configured is not None else system_nameservers(path)
