"""When lines appeared in a growing log file, on the test's own clock."""

from __future__ import annotations

import time
from pathlib import Path


class LineTimes:
    """Counts the lines of `path` that contain `fragment`, and notes when each first showed.

    `poll()` reads the file; a line is timed by the poll that first saw it, so the error is
    one poll interval (wait_until's, 20 ms). Two lines first seen by one poll get one time.
    """

    def __init__(self, path: Path, fragment: str) -> None:
        self.path = path
        self.fragment = fragment
        self.times: list[float] = []

    def poll(self) -> int:
        now = time.monotonic()
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        seen = sum(1 for line in text.splitlines() if self.fragment in line)
        self.times += [now] * (seen - len(self.times))
        return seen

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]
