"""A sipp MESSAGE flood: the highest rate a user agent absorbs without retransmissions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.sippflood import run_sipp

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
    screen = workdir / f"sipp-{service}-{rate}.txt"
    args = ["-s", service, target, "-i", "127.0.0.1", "-p", "0"]
    sent, answered, failed, retrans = run_sipp(SCENARIO, args, rate, seconds, screen, grace_s=20)
    return FloodResult(rate, int(rate * seconds), sent, answered, retrans, failed)


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
