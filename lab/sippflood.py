"""A MESSAGE flood by sipp through the lab's Kamailio, with the owner's credentials.

scripts/sipp/message_auth.xml: each MESSAGE is challenged once (407) and sent again with
credentials, so the target sees what a registered device sees from an authenticating proxy.
The body looks like a reply ("ok: ..."): sipagent relays it but never answers it.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .kamailio import Kamailio
from .waiting import require_binary

SCENARIO = Path(__file__).resolve().parents[1] / "scripts" / "sipp" / "message_auth.xml"


@dataclass(frozen=True)
class FloodOutcome:
    rate: int
    sent: int  # MESSAGEs sipp started (each is sent twice: challenged, then with credentials)
    answered: int  # 200 OK received
    failed: int  # gave up (timeout, or a final error such as 503)
    retransmissions: int
    seconds: float


def sipp_flood(
    kam: Kamailio, to_user: str, rate: int, seconds: float, workdir: Path, sender: str = "owner"
) -> FloodOutcome:
    """`rate` MESSAGE/s for `seconds` from `sender` to `to_user`, through `kam`."""
    screen = workdir / f"sipp-{to_user}-{rate}-{time.monotonic_ns()}.txt"
    started = time.monotonic()
    target = ["-s", to_user, f"{kam.host}:{kam.port}", "-i", kam.host, "-p", "0",
              "-key", "domain", kam.domain, "-key", "user", sender,
              "-au", sender, "-ap", kam.users[sender]]  # fmt: skip
    sent, answered, failed, retransmissions = run_sipp(
        SCENARIO, target, rate, seconds, screen, grace_s=40
    )
    return FloodOutcome(rate, sent, answered, failed, retransmissions, time.monotonic() - started)


def run_sipp(
    scenario: Path, target: list[str], rate: int, seconds: float, screen: Path, *, grace_s: int
) -> tuple[int, int, int, int]:
    """sipp running `scenario` against `target` (its arguments) at `rate`/s for `seconds`,
    waiting `grace_s` for the last answers; its final screen's counters (`read_screen`)."""
    sipp = require_binary("sipp", "the Debian package sip-tester")
    count = int(rate * seconds)
    subprocess.run(
        [sipp, "-sf", str(scenario), *target,
         "-m", str(count), "-r", str(rate), "-rp", "1000", "-l", str(count), "-nostdin",
         "-timeout", str(int(seconds) + grace_s), "-trace_screen", "-screen_file", str(screen)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        timeout=seconds + 3 * grace_s,
    )  # fmt: skip
    return read_screen(screen.read_text())


def read_screen(text: str) -> tuple[int, int, int, int]:
    """sipp's final screen: MESSAGEs started, 200s received, calls failed, retransmissions."""
    sends = re.findall(r"MESSAGE -+>\s+(\d+)\s+(\d+)", text)
    answered = re.findall(r"200 <-+\s+(\d+)", text)
    failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", text)
    if not sends or not answered or failed is None:
        raise AssertionError(f"sipp's screen is not what was expected:\n{text[-3000:]}")
    retransmissions = sum(int(r) for _, r in sends)
    return int(sends[0][0]), int(answered[0]), int(failed.group(1)), retransmissions
