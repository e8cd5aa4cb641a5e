"""The newest error for Home Assistant's diagnostic entity (agent.core.diagnostics): errors
and failed registrations count, other warnings (a stranger's refusal) never do; its text is
cut to what Home Assistant keeps, its time is UTC; the payload is handed out only when it
changed.
"""

from __future__ import annotations

import logging

from agent.core.capabilities import Capabilities, TlsLibrary
from agent.core.diagnostics import MAX_ERROR_CHARS, Diagnostics


def record(level: int, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("agent", level, __file__, 1, msg, args, None)
    rec.created = 1_800_000_000.5  # 2027-01-15T08:00:00.5Z
    rec.__dict__.update(extra)
    return rec


def test_only_errors_and_failed_registrations_are_the_last_error() -> None:
    diag = Diagnostics()
    assert diag.payload()["last_error"] == "" and diag.payload()["last_error_at"] is None
    diag.errors.emit(record(logging.WARNING, "refused a message from %s", "eve"))
    diag.errors.emit(record(logging.WARNING, "registration ok", REGISTRATION="registered"))
    assert diag.errors.latest is None
    diag.errors.emit(record(logging.WARNING, "registration failed: %d", 403, REGISTRATION="failed"))
    assert diag.payload()["last_error"] == "registration failed: 403"
    assert diag.payload()["last_error_at"] == "2027-01-15T08:00:00+00:00"
    diag.errors.emit(record(logging.ERROR, "disk full"))
    assert diag.payload()["last_error"] == "disk full"


def test_a_long_or_broken_error_is_kept_as_home_assistant_can_show_it() -> None:
    diag = Diagnostics()
    diag.errors.emit(record(logging.ERROR, "x" * 1000))
    assert diag.payload()["last_error"] == "x" * MAX_ERROR_CHARS
    assert MAX_ERROR_CHARS <= 255
    diag.errors.emit(record(logging.ERROR, "%d apples", "not a number"))
    assert diag.payload()["last_error"] == "%d apples"


def test_the_payload_is_handed_out_once_per_change() -> None:
    caps = Capabilities("2.15.1", False, TlsLibrary("OpenSSL 3.0.19 27 Jan 2026"))
    diag = Diagnostics(caps)
    first = diag.changed()
    assert first is not None
    assert (first["pjproject"], first["pjproject_outdated"], first["tls"]) == ("2.15.1", True, True)
    assert first["deferred_responses"] is False
    assert diag.changed() is None
    diag.errors.emit(record(logging.ERROR, "boom"))
    assert diag.changed() is not None
    assert Diagnostics().payload()["pjproject_details"] is None
