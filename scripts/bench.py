#!/usr/bin/env python3
"""Measure sipagent as its users feel it, beside baresip, on real parts started here.

    .venv/bin/python scripts/bench.py [--runs 10] [--idle-seconds 60] [--json out.json]

Starts Kamailio and Mosquitto itself (tests/lab), the agent with mock pins, a peer UA,
sipp and baresip. Prints one table (p50/p99/max and sample counts) and, with --json,
writes it to a file. Never run by the tests: timing belongs here, not in asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "scripts")]

from benchlib.baresip import start_baresip  # noqa: E402
from benchlib.flood import absorb_rate  # noqa: E402
from benchlib.procstat import idle_figures, row  # noqa: E402
from lab.agentproc import AgentProcess  # noqa: E402
from lab.configs import agent_toml  # noqa: E402
from lab.kamailio import Kamailio  # noqa: E402
from lab.mosquitto import Mosquitto  # noqa: E402
from lab.peer import Peer  # noqa: E402
from lab.ports import free_port  # noqa: E402
from lab.sipoptions import sip_options  # noqa: E402
from lab.waiting import wait_until  # noqa: E402

FLOOD_RATES = (500, 1000, 2000, 3000, 4000, 6000, 8000)


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


def command_round_trips(work: Path, kam: Kamailio, count: int) -> list[float]:
    """The owner sends `toggle lamp` through Kamailio; time until the reply is at the peer."""
    agent = AgentProcess(work / "cmd", agent_toml(kam, device_id="bench"))
    agent.wait_ready(30)
    owner = Peer.start(
        kam.aor("owner"), registrar=kam.registrar_uri, proxy=kam.proxy_uri,
        username="owner", password=kam.users["owner"], workdir=work,
    )  # fmt: skip
    owner.wait_registered()
    times = []
    for _ in range(count):
        t0 = time.monotonic()
        owner.send_nowait(kam.aor("agent"), "toggle lamp")
        owner.wait_message(timeout=10)
        times.append((time.monotonic() - t0) * 1000)
    owner.close()
    agent.close()
    return times


def agent_idle(work: Path, kam: Kamailio, mq: Mosquitto, seconds: float) -> dict[str, float]:
    agent = AgentProcess(work / "idle", agent_toml(kam, mosquitto=mq, device_id="bench"))
    agent.wait_ready(30)
    figures = idle_figures(agent.proc.pid, seconds)
    agent.close()
    return figures


def agent_flood(work: Path, seconds: float) -> tuple[int, list]:
    """Direct mode, no MQTT: the SIP receive path and the agent's per-message work."""
    port = free_port()
    # Flood bodies look like replies ("ok: …"): relayed, never answered.
    toml = agent_toml(
        listen=f"127.0.0.1:{port}", device_id="flood", on_forbidden="silent", log_level="warning"
    )
    agent = AgentProcess(work / "flood", toml)
    agent.wait_ready(30)
    result = absorb_rate(f"127.0.0.1:{port}", "agent", work, FLOOD_RATES, seconds)
    agent.close()
    return result


def baresip_figures(work: Path, idle_seconds: float, flood_seconds: float) -> dict[str, object]:
    port = free_port()
    proc = start_baresip(work / "baresip", port)
    try:
        wait_until(lambda: sip_options("127.0.0.1", port, 0.2), 10, "baresip answering")
        figures: dict[str, object] = dict(idle_figures(proc.pid, idle_seconds))
        best, _ = absorb_rate(f"127.0.0.1:{port}", "bench", work, FLOOD_RATES, flood_seconds)
        figures["absorb_rate"] = best
    finally:
        proc.terminate()
        proc.wait(10)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    parser.add_argument("--runs", type=int, default=10, help="agent starts to time")
    parser.add_argument("--commands", type=int, default=200, help="command round trips")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--flood-seconds", type=float, default=3.0, help="per flood step")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sipagent-bench-") as tmp:
        work = Path(tmp)
        kam, mq = Kamailio(work / "kamailio"), Mosquitto(work / "mosquitto")
        kam.start()
        mq.start()
        try:
            ready, stop = start_and_stop(work, kam, mq, args.runs)
            commands = command_round_trips(work, kam, args.commands)
            idle = agent_idle(work, kam, mq, args.idle_seconds)
            absorb, _ = agent_flood(work, args.flood_seconds)
        finally:
            kam.stop()
            mq.stop()
        baresip = baresip_figures(work, args.idle_seconds, args.flood_seconds)
    rows = [
        row("start -> READY=1 (registered)", ready, "ms", "<= 1500 ms"),
        row("SIGTERM -> exit", stop, "ms", "<= 2000 ms"),
        row("command MESSAGE -> reply at peer, via Kamailio", commands, "ms"),
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"sipagent benchmark on {machine}")
    print(f"{'figure':48} {'n':>5} {'p50':>10} {'p99':>10} {'max':>10}  target")
    for r in rows:
        u = r["unit"]
        print(f"{r['figure']:48} {r['n']:>5} {r['p50']:>7} {u} {r['p99']:>7} {u} "
              f"{r['max']:>7} {u}  {r['target']}")  # fmt: skip
    print(f"\n{'figure':48} {'sipagent':>10} {'baresip':>10} {'ratio':>7}  target")
    pairs = [
        (f"idle CPU over {args.idle_seconds:g} s (% of a core)", idle["idle_cpu_pct"],
         baresip["idle_cpu_pct"], "<= 0.15 %"),
        ("idle resident memory (MB)", idle["idle_rss_mb"], baresip["idle_rss_mb"], "<= 40 MB"),
        ("MESSAGE absorb rate, direct, no MQTT (/s)", absorb, baresip["absorb_rate"], ""),
    ]  # fmt: skip
    for name, ours, theirs, target in pairs:
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"{name:48} {ours:>10.3f} {theirs:>10.3f} {ratio:>7}  {target}")
    if args.json:
        result = {"machine": machine, "rows": rows, "agent": {**idle, "absorb_rate": absorb},
                  "baresip": baresip}  # fmt: skip
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
