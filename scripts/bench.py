#!/usr/bin/env python3
"""Measure sipagent as its users feel it, beside baresip, on real parts started here.

    .venv/bin/python scripts/bench.py [--quick] [--json results.json] [--plot latency.png]

Starts Kamailio and Mosquitto itself (lab/), the agent with mock pins, a raw-UDP
SIP client that timestamps every request (benchlib/sipclient.py), sipp and baresip.
Prints one table (p50/p99/max and sample counts) and, with --json, writes it to a file.
Never run by the tests: timing belongs here, not in asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from benchlib import agentfigs
from benchlib.baresip import start_baresip
from benchlib.flood import absorb_rate
from benchlib.memlayers import memory_layers
from benchlib.plot import plot_latencies
from benchlib.procstat import idle_figures, row

from lab.kamailio import Kamailio
from lab.mosquitto import Mosquitto
from lab.ports import free_port
from lab.sipoptions import sip_options
from lab.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]


def baresip_figures(work: Path, idle_seconds: float, flood_seconds: float) -> dict[str, float]:
    port = free_port()
    proc = start_baresip(work / "baresip", port)
    try:
        wait_until(lambda: sip_options("127.0.0.1", port, 0.2), 10, "baresip answering")
        figures = idle_figures(proc.pid, idle_seconds)
        best, _ = absorb_rate(
            f"127.0.0.1:{port}", "bench", work, agentfigs.FLOOD_RATES, flood_seconds
        )
        figures["absorb_rate"] = best
    finally:
        proc.terminate()
        proc.wait(10)
    return figures


def measure(args: argparse.Namespace, work: Path) -> tuple[list, dict, dict, dict, dict]:
    kam, mq = Kamailio(work / "kamailio", shm_mb=512), Mosquitto(work / "mosquitto")
    kam.start()
    mq.start()
    try:
        ready, stop = agentfigs.start_and_stop(work, kam, mq, args.runs)
        to_pin, to_reply = agentfigs.command_latency(work, kam, args.samples)
        relay = agentfigs.relay_latency(work, kam, mq, args.samples, rate=100)
        send = agentfigs.send_latency(work, kam, mq, args.samples)
        sustained = agentfigs.sustained(work, kam, mq, args.rate, args.sustain_seconds)
        idle = agentfigs.agent_idle(work, kam, mq, args.idle_seconds)
        growth = agentfigs.memory_growth(work, mq, args.growth_messages, rate=2000)
    finally:
        kam.stop()
        mq.stop()
    absorb, _ = agentfigs.agent_absorb(work, args.flood_seconds)
    rows = [
        row("MESSAGE via Kamailio -> B/message/in (100/s)", relay, "ms", "p50 <= 2, p99 <= 10"),
        row("MESSAGE command -> pin changed (via Kamailio)", to_pin, "ms", "p50 <= 2"),
        row("MESSAGE command -> reply at the sender", to_reply, "ms", ""),
        row("B/message/send -> MESSAGE at the peer", send, "ms", "p50 <= 2"),
        row("start -> READY=1 (registered)", ready, "ms", "<= 1500"),
        row("SIGTERM -> exit", stop, "ms", "<= 2000"),
    ]
    baresip = baresip_figures(work, args.idle_seconds, args.flood_seconds)
    latencies = {
        "MESSAGE -> B/message/in": relay,
        "command -> pin": to_pin,
        "command -> reply": to_reply,
        "B/message/send -> peer": send,
    }
    return rows, {**idle, "absorb_rate": absorb, "growth": growth}, baresip, sustained, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter idle")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="PNG of the latency distributions")
    args = parser.parse_args()
    args.runs, args.samples = (5, 100) if args.quick else (20, 1000)
    args.idle_seconds = 15.0 if args.quick else 60.0
    args.growth_messages = 10_000 if args.quick else 100_000
    args.flood_seconds, args.rate, args.sustain_seconds = 3.0, 2000, 5.0
    with tempfile.TemporaryDirectory(prefix="sipagent-bench-") as tmp:
        rows, agent, baresip, sustained, latencies = measure(args, Path(tmp))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"sipagent benchmark on {machine}")
    print(f"{'figure':46} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}  target")
    for r in rows:
        print(f"{r['figure']:46} {r['n']:>5} {r['p50']:>8} {r['p99']:>8} {r['max']:>8}  "
              f"{r['target']} {r['unit']}")  # fmt: skip
    s = sustained
    print(f"\nsustained {s['rate']}/s via Kamailio for {args.sustain_seconds:g} s: sent "
          f"{s['sent']}, answered {s['answered']}, on MQTT {s['relayed']}, client "
          f"retransmissions {s['retransmissions']}  (target: none lost)")  # fmt: skip
    print(f"\n{'figure':46} {'sipagent':>9} {'baresip':>9} {'ratio':>6}  target")
    pairs = [
        (f"idle CPU, {args.idle_seconds:g} s (% of a core)", "idle_cpu_pct", "<= 0.15"),
        ("idle resident memory (MB)", "idle_rss_mb", "<= 40"),
        ("MESSAGE absorb rate, sipp flood, direct (/s)", "absorb_rate", ""),
    ]
    for name, key, target in pairs:
        ours, theirs = agent[key], baresip[key]
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"{name:46} {ours:>9.3f} {theirs:>9.3f} {ratio:>6}  {target}")
    g = agent["growth"]
    label = f"memory growth after {g['messages']} MESSAGEs (MB)"
    growth = g["rss_after_mb"] - g["rss_before_mb"]
    print(f"{label:46} {growth:>9.3f} {'':>9} {'':>6}  <= 5   ({g['rss_before_mb']:.1f} -> "
          f"peak {g['rss_peak_mb']:.1f} -> {g['rss_after_mb']:.1f} MB after the quiet period, "
          f"{g['relayed']} relayed)")  # fmt: skip
    print("\nresident memory by layer (cumulative, fresh interpreter):")
    layers = memory_layers(str(REPO))
    for label, rss, anon in layers:
        print(f"  {label:56} {rss:6.1f} MB ({anon:.1f} anonymous)")
    if args.plot:
        problem = plot_latencies(latencies, args.plot, f"sipagent latencies on {machine}")
        print(f"plot: {problem or args.plot}")
    if args.json:
        result = {"machine": machine, "rows": rows, "sustained": sustained, "agent": agent,
                  "baresip": baresip, "memory_layers": layers}  # fmt: skip
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
