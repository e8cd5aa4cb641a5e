"""What Home Assistant's diagnostic entities and `sipagent status` show beyond the state:
the pjproject the agent runs on, whether it is outdated, and the last error.

`LastError` is a logging handler: any thread may log, so it only stores the newest record
(one attribute write); the owner thread reads it when it publishes `B/diagnostics`.
"""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass

from agent.core.capabilities import Capabilities

# HOOK(issue 14): that issue adds to agent.adapters.sip.capabilities a pure function naming the
# security fixes a pjproject lacks (and the TLS library's age). Until it is merged, "outdated" is
# the version alone: the fixes FIELD-NOTES.md lists (Content-Length and digest overflows, an evsub
# use-after-free on refresh) came with 2.16 and 2.17.
FIRST_CURRENT = (2, 16)
# Home Assistant keeps at most 255 characters of an entity's state.
MAX_ERROR_CHARS = 250


def pjproject_outdated(version: str) -> bool:
    """True when `version` ("2.15.1") predates the pjproject with the known security fixes."""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None:
        return True  # a version we cannot read is not one we can vouch for
    return (int(found[1]), int(found[2])) < FIRST_CURRENT


@dataclass(frozen=True)
class ErrorNote:
    text: str
    at: str  # ISO 8601 UTC


class LastError(logging.Handler):
    """Keeps the newest error: records at ERROR and above, and failed registrations (which
    are logged as warnings with the journal field REGISTRATION=failed). Refusals of strangers
    are warnings too, and stay out: nobody outside may write this entity."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.latest: ErrorNote | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and getattr(record, "REGISTRATION", "") != "failed":
            return
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a broken format string must not break logging
            text = str(record.msg)
        at = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        self.latest = ErrorNote(text[:MAX_ERROR_CHARS], at.isoformat(timespec="seconds"))


class Diagnostics:
    """The retained `B/diagnostics` payload, and whether it changed since it was published."""

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        self.capabilities = capabilities
        self.errors = LastError()
        self._published: dict[str, object] | None = None

    def payload(self) -> dict[str, object]:
        caps = self.capabilities
        note = self.errors.latest
        return {
            "pjproject": caps.pjproject if caps else "",
            "pjproject_outdated": pjproject_outdated(caps.pjproject) if caps else None,
            "deferred_responses": caps.deferred_responses if caps else None,
            "tls": caps.tls if caps else None,
            "last_error": note.text if note else "",
            "last_error_at": note.at if note else None,
        }

    def changed(self) -> dict[str, object] | None:
        """The payload if it differs from the last one handed out (which it now is)."""
        payload = self.payload()
        if payload == self._published:
            return None
        self._published = payload
        return payload
