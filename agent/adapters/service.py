"""systemd integration: the notify protocol (READY, STATUS, WATCHDOG, STOPPING) and logging.

Everything here is a no-op outside systemd, so the same agent runs from a terminal. Under
systemd, log records go to the journal with structured fields (`agent.core.logfields`), so
`journalctl -u sipagent SENDER=sip:owner@pbx.example.org` finds what one sender did.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
from collections.abc import Callable

from systemd import daemon, journal

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages when NOTIFY_SOCKET is set (systemd, or a test)."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self.watchdog_interval_s = _watchdog_interval()
        # More STATUS= text from outside the agent's core (outbox depth, health).
        self.status_extra: Callable[[], str] | None = None
        self._last_status = ""

    def _send(self, message: str) -> None:
        if self.enabled and not daemon.notify(message):
            log.warning("systemd notify %r was not delivered", message.split("=")[0])

    def ready(self, status: str) -> None:
        status = self._with_extra(status)
        self._last_status = status
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        # STATUS= is for humans (systemctl status); send it only when it says something new.
        status = self._with_extra(status)
        if status != self._last_status:
            self._last_status = status
            self._send(f"STATUS={status}")

    def _with_extra(self, status: str) -> str:
        extra = self.status_extra() if self.status_extra is not None else ""
        return f"{status}; {extra}" if extra else status

    def reloading(self) -> None:
        """A reload begins; READY=1 ends it (systemd shows the unit as "reloading" between)."""
        self._send("RELOADING=1")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> None:
        self._send(f"STOPPING=1\nSTATUS={status}")


def _watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC in seconds, when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number", usec)
        return None


def under_journald() -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM for that)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str = "info") -> None:
    """Log to journald when systemd started us, else plain lines on stderr."""
    # A hang ends in the watchdog's SIGABRT: print where every thread was (stderr is the
    # journal under systemd) before the process dies.
    faulthandler.enable()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if under_journald():
        handler = journal.JournalHandler(SYSLOG_IDENTIFIER="sipagent")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
