#!/usr/bin/env python3
"""How long `sipagent status` takes: the socket round trip through the owner loop, and the
whole command (mostly Python starting).

    scripts/bench_status.py [--requests 200] [--commands 5]

Starts one agent (direct mode, mock pins, no MQTT) in a temporary directory, as the tests do.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.adapters.status_socket import ask
from lab.agentproc import AgentProcess
from lab.configs import DOOR_CONFIG, agent_toml
from lab.waiting import wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--commands", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sipagent-bench-") as tmp:
        agent = AgentProcess(Path(tmp) / "agent", agent_toml(extra=DOOR_CONFIG))
        try:
            agent.wait_ready()
            path = str(agent.status_socket)
            wait_until(lambda: agent.status_socket.exists(), 10, "the status socket")
            rtts = []
            for _ in range(args.requests):
                started = time.perf_counter()
                ask([path])
                rtts.append((time.perf_counter() - started) * 1000)
            rtts.sort()
            p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
            print(
                f"socket round trip over {len(rtts)} requests: p50 {statistics.median(rtts):.2f} "
                f"ms, p99 {p99:.2f} ms, max {rtts[-1]:.2f} ms"
            )
            runs = []
            for _ in range(args.commands):
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "agent", "status", "--socket", path],
                    check=True,
                    capture_output=True,
                )
                runs.append(time.perf_counter() - started)
            print(f"`sipagent status` command: median {statistics.median(runs) * 1000:.0f} ms")
        finally:
            agent.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
