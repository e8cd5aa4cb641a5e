"""Waiting on conditions with deadlines (never a bare sleep) and small process helpers."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Return the first truthy value of ``predicate()``; AssertionError after ``timeout`` s.

    ``interval`` paces the re-checks with ``Event.wait``; it is a poll period, not a guess of
    how long something takes.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        pause.wait(min(interval, left))


def wait_until_or_none(
    predicate: Callable[[], T], timeout: float, interval: float = 0.02
) -> T | None:
    """Like `wait_until`, but None instead of an AssertionError when time runs out."""
    try:
        return wait_until(predicate, timeout, "", interval)
    except AssertionError:
        return None


def require_binary(name: str, hint: str) -> str:
    """Path of executable ``name``; a missing server fails the test, it is never skipped."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise AssertionError(f"{name} not found on PATH: install {hint}")
    return path


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, for assertion messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])
