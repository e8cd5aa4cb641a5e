"""Reading `sip.nameservers`: where pjsip's DNS resolver sends its queries (agent.core.nameservers
says why the agent always gives it some)."""

from __future__ import annotations

from agent.config.table import Table
from agent.core.nameservers import usable


def read_nameservers(t: Table) -> tuple[str, ...] | None:
    """`sip.nameservers`: IP addresses (port 53); [] turns pjsip's resolver off."""
    if "nameservers" not in t.raw:
        return None
    found: list[str] = []
    for where, text in t.texts("nameservers"):
        address = usable(text)
        if address is None:
            t.problems.append(
                f"{where}: {text!r} is not an IP address (pjsip asks port 53; no names, "
                "ports or zones)"
            )
        else:
            found.append(address)
    return tuple(found)
