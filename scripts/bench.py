#!/usr/bin/env python3
"""Measure sipagent as its users feel it, on real parts started here (Kamailio, Mosquitto).

    .venv/bin/python scripts/bench.py [--runs 10] [--idle-seconds 60] [--json out.json]

Figures: start -> READY=1 (registered), SIGTERM -> exit, resident memory and CPU while idle,
MESSAGE command -> pin changed and -> reply at the peer. Numbers go to stdout as a table
and, with --json, to a file. Never run by the tests: timing belongs here, not in asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from lab.agentproc import AgentProcess  # noqa: E402
from lab.configs import agent_toml  # noqa: E402
from lab.kamailio import Kamailio  # noqa: E402
from lab.mosquitto import Mosquitto  # noqa: E402
from lab.peer import Peer  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float], unit: str) -> dict[str, object]:
    return {
        "figure": name,
        "unit": unit,
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p99": round(pct(values, 0.99), 3),
        "max": round(max(values), 3),
    }


def start_and_stop(work: Path, kam: Kamailio, mq: Mosquitto, runs: int) -> tuple[list, list]:
    ready, stop = [], []
    for i in range(runs):
        t0 = time.monotonic()
        agent = AgentProcess(work / f"start{i}", agent_toml(kam, mosquitto=mq, device_id="bench"))
        ready.append((agent.wait_ready(30) - t0) * 1000)
        t1 = time.monotonic()
        agent.terminate()
        agent.wait_exit(30)
        stop.append((time.monotonic() - t1) * 1000)
        agent.close()
    return ready, stop


def command_latency(work: Path, kam: Kamailio, count: int) -> list[float]:
    """Owner sends `toggle lamp` through Kamailio; time until the reply is at the peer."""
    agent = AgentProcess(work / "cmd", agent_toml(kam, device_id="bench"))
    agent.wait_ready(30)
    owner = Peer.start(
        kam.aor("owner"), registrar=kam.registrar_uri, proxy=kam.proxy_uri,
        username="owner", password=kam.users["owner"], workdir=work,
    )  # fmt: skip
    owner.wait_registered()
    replies = []
    for _ in range(count):
        t0 = time.monotonic()
        owner.send_nowait(kam.aor("agent"), "toggle lamp")
        owner.wait_message(timeout=10)
        replies.append((time.monotonic() - t0) * 1000)
    owner.close()
    agent.close()
    return replies


def idle(work: Path, kam: Kamailio, mq: Mosquitto, seconds: float) -> dict[str, float]:
    agent = AgentProcess(work / "idle", agent_toml(kam, mosquitto=mq, device_id="bench"))
    agent.wait_ready(30)
    pid = agent.proc.pid
    pause = threading.Event()
    pause.wait(2.0)  # let start-up work settle before the idle window opens
    c0, t0 = cpu_seconds(pid), time.monotonic()
    pause.wait(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    result = {"idle_cpu_pct": 100 * (c1 - c0) / (t1 - t0), "idle_rss_mb": rss_mb(pid)}
    agent.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sipagent-bench-") as tmp:
        work = Path(tmp)
        kam, mq = Kamailio(work / "kamailio"), Mosquitto(work / "mosquitto")
        kam.start()
        mq.start()
        try:
            ready, stop = start_and_stop(work, kam, mq, args.runs)
            replies = command_latency(work, kam, args.commands)
            idle_figures = idle(work, kam, mq, args.idle_seconds)
        finally:
            kam.stop()
            mq.stop()
    rows = [
        summary("start -> READY=1 (registered)", ready, "ms"),
        summary("SIGTERM -> exit", stop, "ms"),
        summary("command MESSAGE -> reply at peer (via Kamailio)", replies, "ms"),
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"sipagent benchmark on {machine}")
    print(f"{'figure':50} {'n':>5} {'p50':>9} {'p99':>9} {'max':>9}")
    for r in rows:
        print(f"{r['figure']:50} {r['n']:>5} {r['p50']:>7} {r['unit']} {r['p99']:>7} {r['unit']}"
              f" {r['max']:>7} {r['unit']}")  # fmt: skip
    idle_label = f"idle CPU over {args.idle_seconds:g} s"
    print(f"{idle_label:50} {idle_figures['idle_cpu_pct']:.3f} %")
    print(f"{'idle resident memory':50} {idle_figures['idle_rss_mb']:.1f} MB")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine, "rows": rows, **idle_figures}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
