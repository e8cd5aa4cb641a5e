#!/usr/bin/env python3
"""Input change -> NOTIFY received, for 1, 10 and 100 watchers of an agent in serve mode.

    .venv/bin/python scripts/bench_presence.py [--trials 50] [--sizes 1,10,100] [--json out.json]

The agent runs in direct mode (no server) with a mock door input; watchers are pjsua2 peers
(lab/peer_main.py) in a few processes, each holding up to 20 subscriptions (dialogs) to
the agent. Each trial flips the door and times, for every subscription, the moment its NOTIFY
was handled by the watcher (the peer's own timestamp) from just before the flip was requested.
The figure includes the test's pipe to the agent process and the peers' event loop; it is an
upper bound on what the agent itself takes. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from lab.agentproc import AgentProcess
from lab.configs import DOOR_CONFIG, agent_toml
from lab.kamailio import Kamailio
from lab.peer import Peer
from lab.ports import free_port
from lab.waiting import wait_until

DOOR = 27
PER_PROCESS = 20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _seen(peer: Peer, uri: str, note: str, after: int) -> float | None:
    for event in peer.events[after:]:
        if event.get("event") == "buddy" and event["uri"] == uri and event["note"] == note:
            return float(event["t"])
    return None


def measure(work: Path, watchers: int, trials: int) -> dict[str, object]:
    processes = max(1, -(-watchers // PER_PROCESS))
    names = [f"bench{i}" for i in range(processes)]
    port = free_port()
    extra = DOOR_CONFIG + "watchers = [" + ", ".join(f'"sip:{n}@127.0.0.1"' for n in names) + "]\n"
    config = agent_toml(listen=f"127.0.0.1:{port}", presence="serve", extra=extra)
    agent = AgentProcess(work / f"agent{watchers}", config)
    peers: list[Peer] = []
    try:
        agent.wait_ready(30)
        target = f"sip:agent@127.0.0.1:{port}"
        subs: list[tuple[Peer, str]] = []
        for i, name in enumerate(names):
            peer = Peer.start(uri=f"sip:{name}@127.0.0.1", workdir=work / "peers", timeout=30)
            peers.append(peer)
            count = min(PER_PROCESS, watchers - i * PER_PROCESS)
            for j in range(count):
                uri = f"{target};w={j}"
                peer.subscribe(uri)
                subs.append((peer, uri))
        marks = {id(p): 0 for p in peers}
        wait_until(
            lambda: all(_seen(p, u, "door closed", 0) for p, u in subs), 60, "all subscribed"
        )
        latencies: list[float] = []
        last: list[float] = []
        active = False
        for _ in range(trials):
            active = not active
            note = "door open" if active else "door closed"
            for p in peers:
                marks[id(p)] = len(p.events)
            t0 = time.time()
            agent.drive(DOOR, not active)  # pulled up: low is active ("open")

            def all_seen(note: str = note) -> list[float] | None:
                times = [_seen(p, u, note, marks[id(p)]) for p, u in subs]
                return None if None in times else [t for t in times if t is not None]

            times = wait_until(all_seen, 30, f"{watchers} watchers to see {note}")
            trial = [(t - t0) * 1000 for t in times]
            latencies += trial
            last.append(max(trial))
        return {
            "watchers": watchers,
            "processes": processes,
            "trials": trials,
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(pct(latencies, 0.99), 2),
            "all_p50_ms": round(statistics.median(last), 2),
            "all_p99_ms": round(pct(last, 0.99), 2),
            "all_max_ms": round(max(last), 2),
        }
    finally:
        for p in peers:
            p.request_quit()
        for p in peers:
            p.close()
        agent.close()


def shutdown_publishing(work: Path, runs: int) -> dict[str, object]:
    """SIGTERM -> exit of an agent that publishes through Kamailio and watches a contact."""
    times = []
    with Kamailio(work / "kamailio") as kam:
        extra = DOOR_CONFIG + f'[presence.watch]\nowner = "{kam.aor("owner")}"\n'
        for i in range(runs):
            agent = AgentProcess(
                work / f"stop{i}", agent_toml(kam, presence="publish", extra=extra)
            )
            agent.wait_ready(30)
            t0 = time.monotonic()
            agent.terminate()
            agent.wait_exit(30)
            times.append((time.monotonic() - t0) * 1000)
            agent.close()
    return {
        "figure": "SIGTERM -> exit, publish mode",
        "runs": runs,
        "p50_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--stops", type=int, default=10, help="SIGTERM runs in publish mode")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-presence-") as tmp:
        if args.stops:
            stop = shutdown_publishing(Path(tmp), args.stops)
            results.append(stop)
            print(f"SIGTERM -> exit, publish: p50 {stop['p50_ms']} ms, max {stop['max_ms']} ms")
        for size in (int(s) for s in args.sizes.split(",")):
            result = measure(Path(tmp), size, args.trials)
            results.append(result)
            print(
                f"{size:4d} watchers: each NOTIFY p50 {result['p50_ms']} ms, "
                f"p99 {result['p99_ms']} ms; all watchers notified p50 "
                f"{result['all_p50_ms']} ms, p99 {result['all_p99_ms']} ms, "
                f"max {result['all_max_ms']} ms",
                flush=True,
            )
    if args.json:
        meta = {"machine": platform.platform(), "python": platform.python_version()}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
