"""CPU time and resident memory of a process, from /proc."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def idle_figures(pid: int, seconds: float, settle: float = 2.0) -> dict[str, float]:
    """CPU (% of one core) over `seconds` after `settle`, and resident memory at the end."""
    pause = threading.Event()
    pause.wait(settle)  # start-up work is not idling
    c0, t0 = cpu_seconds(pid), time.monotonic()
    pause.wait(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return {"idle_cpu_pct": 100 * (c1 - c0) / (t1 - t0), "idle_rss_mb": rss_mb(pid)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, values: list[float], unit: str, target: str = "") -> dict[str, object]:
    """One line of the results table: p50/p99/max of `values` and how many there were."""
    return {
        "figure": name,
        "unit": unit,
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
        "target": target,
    }
