"""Memory of a user agent under a MESSAGE flood through Kamailio, sampled from /proc.

sipp sends the flood through the lab's Kamailio with the owner's credentials
(lab/sippflood.py). A sampler thread reads the target's resident memory every 100 ms
from the flood's start until a minute after its end; the figures are its peak and where it
stands after that quiet minute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.kamailio import Kamailio
from lab.sippflood import FloodOutcome, sipp_flood

from .idlemem import Memory, memory_of

SAMPLE_S = 0.1


@dataclass
class Trace:
    """(seconds since the flood started, memory) every SAMPLE_S."""

    samples: list[tuple[float, Memory]] = field(default_factory=list)

    def peak(self) -> Memory:
        return max((m for _, m in self.samples), key=lambda m: m.rss)

    def at(self, t: float) -> Memory:
        """The last sample at or before t seconds."""
        return [m for s, m in self.samples if s <= t][-1]


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name=f"sample-{pid}")
        self.pid = pid
        self.trace = Trace()
        self.start_at = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                memory = memory_of(self.pid)
            except (OSError, KeyError):
                return  # the process is gone
            self.trace.samples.append((time.monotonic() - self.start_at, memory))
            self._halt.wait(SAMPLE_S)

    def stop(self) -> Trace:
        self._halt.set()
        self.join(5)
        return self.trace


def flood_memory(
    pid: int, kam: Kamailio, to_user: str, rate: int, seconds: float, quiet_s: float, work: Path
) -> tuple[FloodOutcome, Trace, float]:
    """Flood `to_user` (process `pid`) and sample it; also returns when the flood ended."""
    sampler = Sampler(pid)
    sampler.start()
    outcome = sipp_flood(kam, to_user, rate, seconds, work)
    ended = time.monotonic() - sampler.start_at
    threading.Event().wait(quiet_s)
    return outcome, sampler.stop(), ended
