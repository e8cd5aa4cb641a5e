"""What Home Assistant's diagnostic entities and `sipagent status` show beyond the state:
the pjproject the agent runs on, whether it is outdated, and the last error.

`LastError` is a logging handler: any thread may log, so it only stores the newest record
(one attribute write); the owner thread reads it when it publishes `B/diagnostics`.
"""

from __future__ import annotations

import datetime
import logging

from agent.core.capabilities import Capabilities, missing_fixes
from agent.core.record import record

# Home Assistant keeps at most 255 characters of an entity's state.
MAX_ERROR_CHARS = 250


def pjproject_outdated(version: str) -> bool:
    """True when `version` ("2.15.1") lacks security fixes a newer pjproject has, in parts
    the agent runs (agent.core.capabilities.KNOWN_FIXES); a version we cannot read lacks all."""
    return bool(missing_fixes(version))


@record
class ErrorNote:
    """The newest error: its text and when it was logged."""

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
            "tls": caps.tls.available if caps else None,
            "last_error": note.text if note else "",
            "last_error_at": note.at if note else None,
            # What makes it outdated, and its TLS library's age (Home Assistant's attributes).
            "pjproject_details": caps.diagnostics(datetime.date.today()) if caps else None,
        }

    def changed(self) -> dict[str, object] | None:
        """The payload if it differs from the last one handed out (which it now is)."""
        payload = self.payload()
        if payload == self._published:
            return None
        self._published = payload
        return payload
