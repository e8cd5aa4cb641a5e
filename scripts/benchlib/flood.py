"""A sipp MESSAGE flood: the highest rate a user agent absorbs without retransmissions."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.sippflood import read_screen

SCENARIO = Path(__file__).resolve().parents[1] / "sipp" / "message.xml"


@dataclass(frozen=True)
class FloodResult:
    rate: int
    planned: int
    sent: int
    answered: int
    retransmissions: int
    failed: int

    @property
    def clean(self) -> bool:
        """Every MESSAGE went out, was answered, and none needed a retransmission."""
        everything = self.planned == self.sent == self.answered
        return everything and self.retransmissions == 0 and self.failed == 0


def flood(target: str, service: str, rate: int, seconds: float, workdir: Path) -> FloodResult:
    """Send `rate`/s MESSAGEs for `seconds` to `target` (host:port) and read sipp's counters."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp not found: apt-get install sip-tester")
    count = int(rate * seconds)
    screen = workdir / f"sipp-{service}-{rate}.txt"
    subprocess.run(
        [sipp, "-sf", str(SCENARIO), "-s", service, target, "-i", "127.0.0.1", "-p", "0",
         "-m", str(count), "-r", str(rate), "-rp", "1000", "-l", str(count), "-nostdin",
         "-timeout", str(int(seconds) + 20), "-trace_screen", "-screen_file", str(screen)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        timeout=seconds + 60,
    )  # fmt: skip
    sent, answered, failed, retrans = read_screen(screen.read_text())
    return FloodResult(rate, count, sent, answered, retrans, failed)


def absorb_rate(
    target: str, service: str, workdir: Path, rates: tuple[int, ...], seconds: float = 3.0
) -> tuple[int, list[FloodResult]]:
    """The highest rate of `rates` (ascending) absorbed cleanly, and every step's result."""
    best, results = 0, []
    for rate in rates:
        result = flood(target, service, rate, seconds, workdir)
        results.append(result)
        if not result.clean:
            break
        best = rate
    return best, results
