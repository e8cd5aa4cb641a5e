"""systemd integration: the notify protocol (READY, STATUS, WATCHDOG, STOPPING) and logging.

Everything here is a no-op outside systemd, so the same agent runs from a terminal.
"""

from __future__ import annotations

import logging
import os
import sys

from systemd import daemon, journal

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages when NOTIFY_SOCKET is set (systemd, or a test)."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self.watchdog_interval_s = _watchdog_interval()
        self._last_status = ""

    def _send(self, message: str) -> None:
        if self.enabled and not daemon.notify(message):
            log.warning("systemd notify %r was not delivered", message.split("=")[0])

    def ready(self, status: str) -> None:
        self._last_status = status
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        # STATUS= is for humans (systemctl status); send it only when it says something new.
        if status != self._last_status:
            self._last_status = status
            self._send(f"STATUS={status}")

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
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
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
