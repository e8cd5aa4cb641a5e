#!/usr/bin/env python3
"""A fleet of agents on one machine, one Kamailio and one Mosquitto (issue 9, item 3).

    /tmp/venv/bin/python scripts/fleet.py [--agents 50] [--idle 30] [--json out.json]

Starts its own Kamailio (registrar and presence server, shm sized for the fleet) and
Mosquitto, then N agents (lab/fleet.py: agent<i>@sipagent.test, presence published
through Kamailio, all in MQTT group "fleet", mock pins) and measures:

- start: from the first agent's start to the last one READY=1, online and registered on MQTT
  (agents start `--parallel` at a time);
- one `on lamp` published once on sipagent/group/fleet/command: every member's result on its
  own B/command/result (exactly one each), the pins changed, time to the last result;
- one `presence busy` the same way, seen by one watcher (a pjsua2 peer, lab/peer.py)
  subscribed to all N AORs through Kamailio: per-member NOTIFY arrival after the publish
  (the peer's own timestamp; the same clock as the publish), p50 and max;
- memory of each agent: RSS and PSS (/proc/<pid>/smaps_rollup: shared pages divided among
  the processes sharing them, so the PSS sum is what the fleet really costs), and idle CPU
  over `--idle` seconds, per agent and summed.

Never run by the tests (tests/system/test_fleet.py checks the same behaviour with five agents).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

from lab.fleet import Fleet, proc_stats
from lab.kamailio import Kamailio, numbered_users
from lab.mosquitto import Mosquitto
from lab.peer import Peer
from lab.waiting import wait_until

LAMP = 17


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def buddies(peer: Peer, predicate, since: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """uri -> time of the first buddy event after `since` that matches."""
    first: dict[str, float] = {}
    for e in list(peer.events):
        if e.get("event") == "buddy" and e["t"] >= since and predicate(e):
            first.setdefault(e["uri"], e["t"])
    return first


def _is_busy(event: dict[str, object]) -> bool:
    return event["basic"] == "open" and event["activity"] == "busy"


def group_command(fleet: Fleet, command: str) -> tuple[float, dict[int, float], float]:
    """Publish `command` once to the group: (publish time, member -> seconds to its result,
    the members' CPU time meanwhile in ms per member)."""
    before = sum(s.cpu_s for s in fleet.stats())
    sent = time.time()
    fleet.probe.publish(fleet.group_command, command)
    results = fleet.wait_results(command, timeout=60)
    cpu_ms = 1000 * (sum(s.cpu_s for s in fleet.stats()) - before) / fleet.count
    bad = {i: m.json() for i, m in results.items() if not m.json()["ok"]}
    if bad:
        raise SystemExit(f"{command!r} failed on members: {bad}")
    return sent, {i: m.received - sent for i, m in results.items()}, cpu_ms


def run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    n = args.agents
    users = {**numbered_users("agent", n), "watcher": "watcherpw"}
    figures: dict[str, object] = {"agents": n, "parallel_start": args.parallel}
    # Each presentity, watcher dialog and finished transaction lives in Kamailio's shm.
    with (
        Kamailio(workdir / "kamailio", users=users, shm_mb=max(64, 4 * n)) as kam,
        Mosquitto(workdir / "mosquitto") as broker,
        Fleet(workdir / "fleet", kam, broker, n, parallel=args.parallel) as fleet,
    ):
        t0 = time.monotonic()
        fleet.start(timeout_each=60)
        figures["start_all_announced_s"] = round(time.monotonic() - t0, 2)
        print(f"{n} agents READY, online and registered in {figures['start_all_announced_s']} s")

        watcher = Peer.start(
            uri=kam.aor("watcher"),
            registrar=kam.registrar_uri,
            proxy=kam.proxy_uri,
            username="watcher",
            password=users["watcher"],
            workdir=workdir / "watcher",
        )
        try:
            watcher.wait_registered()
            aors = {fleet.aor(i) for i in fleet.members}
            t1 = time.time()
            for aor in sorted(aors):
                watcher.subscribe(aor)
            wait_until(
                lambda: set(buddies(watcher, lambda e: e["basic"] == "open", t1)) >= aors,
                60,
                "the watcher to see every member online",
            )
            figures["watcher_all_online_s"] = round(time.time() - t1, 2)

            _, lamp, lamp_cpu = group_command(fleet, "on lamp")
            pins = sum(fleet.agent(i).pin(LAMP) for i in fleet.members)
            once = all(len(m) == 1 for m in fleet.results("on lamp").values())
            figures["on_lamp"] = {
                "results": len(lamp),
                "exactly_one_each": once,
                "pins_on": pins,
                "last_result_s": round(max(lamp.values()), 3),
                "p50_result_s": round(statistics.median(lamp.values()), 3),
                "cpu_ms_per_member": round(lamp_cpu, 1),
            }

            sent, busy_results, busy_cpu = group_command(fleet, "presence busy")

            def all_busy() -> dict[str, float] | None:
                found = buddies(watcher, _is_busy, sent)
                return found if set(found) >= aors else None

            seen = wait_until(all_busy, 60, "the watcher to see every member busy")
            notify = [t - sent for t in seen.values()]
            figures["presence_busy"] = {
                "results": len(busy_results),
                "last_result_s": round(max(busy_results.values()), 3),
                "cpu_ms_per_member": round(busy_cpu, 1),
                "notifies": len(notify),
                "notify_p50_s": round(statistics.median(notify), 3),
                "notify_p99_s": round(pct(notify, 0.99), 3),
                "notify_max_s": round(max(notify), 3),
                "within_1s": sum(1 for x in notify if x <= 1.0),
            }

            pause = threading.Event()
            pause.wait(args.settle)  # the watcher's and Kamailio's work above is not idling
            before = fleet.stats()
            c0 = time.monotonic()
            pause.wait(args.idle)
            after = fleet.stats()
            span = time.monotonic() - c0
        finally:
            watcher.request_quit()
            watcher.close()
        cpu = [100 * (a.cpu_s - b.cpu_s) / span for a, b in zip(after, before, strict=True)]
        rss = [s.rss_kb / 1024 for s in after]
        pss = [s.pss_kb / 1024 for s in after]
        figures["memory_mb"] = {
            "rss_total": round(sum(rss), 1),
            "rss_per_agent_p50": round(statistics.median(rss), 1),
            "rss_per_agent_max": round(max(rss), 1),
            "pss_total": round(sum(pss), 1),
            "pss_per_agent_p50": round(statistics.median(pss), 1),
            "pss_per_agent_max": round(max(pss), 1),
        }
        figures["idle_cpu_pct_of_one_core"] = {
            "seconds": round(span, 1),
            "total": round(sum(cpu), 2),
            "per_agent_p50": round(statistics.median(cpu), 3),
            "per_agent_max": round(max(cpu), 3),
        }
        servers = {"kamailio": kam.pid, "mosquitto": broker.pid}
        figures["server_main_process_pss_mb"] = {
            name: round(proc_stats(pid).pss_kb / 1024, 1) for name, pid in servers.items() if pid
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=6, help="agents starting at once")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before idling")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        figures = run(args, Path(tmp))
    figures["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
