"""Structured log fields: journald gets them as fields of their own, stderr ignores them.

Pure (no systemd import), so decision modules can tag their log lines too.
"""

from __future__ import annotations


def journal_fields(**fields: object) -> dict[str, str]:
    """`extra=` for a log call: journald fields (SENDER, COMMAND, SIP_STATUS, ...).

    Names are upper-cased; None values are left out. Outside journald they are ignored: the
    message itself must still say everything.
    """
    return {name.upper(): str(value) for name, value in fields.items() if value is not None}
