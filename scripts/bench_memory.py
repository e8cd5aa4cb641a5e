#!/usr/bin/env python3
"""Memory of sipagent idle and under MESSAGE floods, beside baresip under the same floods.

    .venv/bin/python scripts/bench_memory.py [--python PY] [--runs 3] [--json out.json]
                                             [--plot docs/memory.png] [--hour]
                                             [--rates 1000,2000,4000] [--no-latency]

Starts its own Kamailio (512 MB shared memory: docs/lab.md) and Mosquitto, then, per run:
the agent on examples/agent.toml (registered through Kamailio, MQTT with discovery and the
outbox, mock pins) and baresip 1.0 registered at the same Kamailio, each idle, then flooded
through Kamailio at 1000, 2000 and 4000 MESSAGE/s for 10 s by sipp (a fresh process per
flood), sampled every 100 ms until a minute after the flood. `--python` runs the agent
with another interpreter (a venv with another pjsua2 binding); `--hour` adds 10/s for an
hour; `--rates 2000` floods at that rate only (`--rates ""`: idle only). Also (unless
`--no-latency`): MESSAGE -> 200 at the sender, deferred answers against pjsua's automatic
ones, on a binding that has both (2.16+). Never run by the tests.
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
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "scripts")]

from benchlib.baresip import start_registered_baresip  # noqa: E402
from benchlib.idlemem import Memory, ServiceRun, compile_agent, example_config, memory_of  # noqa: E402
from benchlib.memflood import flood_memory  # noqa: E402
from benchlib.memlatency import answer_latency  # noqa: E402
from benchlib.memlayers import memory_layers  # noqa: E402
from benchlib.plot import plot_memory  # noqa: E402

from lab.kamailio import DEFAULT_USERS, Kamailio  # noqa: E402
from lab.mosquitto import Mosquitto  # noqa: E402
from lab.mqttprobe import MqttProbe  # noqa: E402
from lab.sippflood import sipp_flood  # noqa: E402

RATES = (1000, 2000, 4000)
FLOOD_S = 10.0
QUIET_S = 60.0  # the targets' "a minute after"
SETTLE_S = 10.0
USERS = {**DEFAULT_USERS, "baresip": "baresippw"}


def idle_memory(pid: int, seconds: float = 10.0) -> Memory:
    """The median of one sample a second (idle memory moves by a page or two)."""
    samples = []
    for _ in range(int(seconds)):
        samples.append(memory_of(pid))
        threading.Event().wait(1.0)
    return Memory(*(statistics.median(getattr(m, f) for m in samples) for f in Memory.fields()))


def agent_run(work: Path, kam: Kamailio, mq: Mosquitto, python: str, name: str) -> ServiceRun:
    run = ServiceRun(work / name, example_config(kam, mq, device_id="bench"), python=python)
    run.wait_ready(60)
    threading.Event().wait(SETTLE_S)
    return run


def measure_agent(
    work: Path,
    kam: Kamailio,
    mq: Mosquitto,
    python: str,
    r: int,
    quiet: float,
    rates: tuple[int, ...] = RATES,
) -> dict:
    run = agent_run(work, kam, mq, python, f"idle{r}")
    result: dict = {"idle": idle_memory(run.proc.pid).as_dict(), "floods": {}}
    run.close()
    for rate in rates:
        run = agent_run(work, kam, mq, python, f"flood{r}-{rate}")
        probe = MqttProbe(mq.host, mq.port, topics=("sipagent/bench/message/in",))
        idle = memory_of(run.proc.pid)
        load = os.getloadavg()[0]
        outcome, trace, ended = flood_memory(run.proc.pid, kam, "agent", rate, FLOOD_S, quiet, work)
        relayed = {json.loads(m.payload)["body"] for m in probe.messages()}
        probe.close()
        result["floods"][rate] = {
            "idle": idle.as_dict(),
            "peak": trace.peak().as_dict(),
            "after_quiet": trace.at(ended + quiet).as_dict(),
            "sent": outcome.sent,
            "answered_200": outcome.answered,
            "relayed": len(relayed),
            "sender_failed": outcome.failed,
            "load_average": round(load, 2),
            "trace": [(round(t, 1), m.rss) for t, m in trace.samples],
            "flood_ended_s": round(ended, 1),
        }
        run.close()
        print(f"  agent {rate}/s: peak {trace.peak().rss:.1f} MB, after a quiet minute "
              f"{trace.at(ended + quiet).rss:.1f} MB; 200s {outcome.answered}, relayed "
              f"{len(relayed)} (load {load:.2f})", flush=True)  # fmt: skip
    return result


def measure_baresip(
    work: Path, kam: Kamailio, r: int, quiet: float, rates: tuple[int, ...] = RATES
) -> dict:
    result: dict = {"floods": {}}
    for i, rate in enumerate((0, *rates)):
        proc = start_registered_baresip(work / f"baresip{r}-{i}", kam, "baresip")
        try:
            threading.Event().wait(SETTLE_S)
            if rate == 0:
                result["idle"] = idle_memory(proc.pid).as_dict()
                continue
            outcome, trace, ended = flood_memory(
                proc.pid, kam, "baresip", rate, FLOOD_S, quiet, work
            )
            result["floods"][rate] = {
                "peak": trace.peak().as_dict(),
                "after_quiet": trace.at(ended + quiet).as_dict(),
                "answered_200": outcome.answered,
                "trace": [(round(t, 1), m.rss) for t, m in trace.samples],
                "flood_ended_s": round(ended, 1),
            }
            print(f"  baresip {rate}/s: peak {trace.peak().rss:.1f} MB, 200s "
                  f"{outcome.answered}", flush=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(10)
    return result


def hour_at_10(work: Path, kam: Kamailio, mq: Mosquitto, python: str) -> dict:
    """10 MESSAGE/s for an hour: memory at the start, its maximum, at the end."""
    run = agent_run(work, kam, mq, python, "hour")
    idle = idle_memory(run.proc.pid)
    samples: list[tuple[float, Memory]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(10.0):
            samples.append((time.monotonic(), memory_of(run.proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    outcome = sipp_flood(kam, "agent", 10, 3600.0, work)
    done.set()
    sampler.join(15)
    run.close()
    peak = max(m.rss for _, m in samples)
    return {
        "idle": idle.as_dict(),
        "peak_rss": peak,
        "end": samples[-1][1].as_dict(),
        "answered_200": outcome.answered,
        "ratio_to_idle": round(peak / idle.rss, 2),
    }


def binding_of(python: str) -> str:
    """ "pjproject 2.17", as the agent's interpreter imports it."""
    import subprocess

    out = subprocess.run(
        [python, "-c", "import pjsua2; e = pjsua2.Endpoint(); e.libCreate(); "
         "print('RESULT pjproject', e.libVersion().full); e.libDestroy()"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    found = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    return found[0].removeprefix("RESULT ") if found else "unknown binding"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    parser.add_argument("--python", default=sys.executable, help="interpreter for the agent")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--hour", action="store_true", help="also 10/s for an hour")
    parser.add_argument("--no-baresip", action="store_true")
    parser.add_argument("--quiet", type=float, default=QUIET_S, help="seconds after a flood")
    parser.add_argument(
        "--rates",
        type=lambda text: tuple(int(r) for r in text.split(",") if r.strip()),
        default=RATES,
        help="MESSAGE/s of the floods, comma-separated ('' for idle only)",
    )
    parser.add_argument("--no-latency", action="store_true", help="skip MESSAGE -> 200")
    args = parser.parse_args()
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": args.python,
        "binding": binding_of(args.python),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="sipagent-mem-") as tmp:
        work = Path(tmp)
        kam = Kamailio(work / "kamailio", users=USERS, shm_mb=512)
        mq = Mosquitto(work / "mosquitto")
        kam.start()
        mq.start()
        try:
            compile_agent(args.python)  # the layers too are loaded from bytecode
            results["layers"] = memory_layers(str(REPO), args.python)
            if not args.no_latency:
                results["answer_latency"] = answer_latency(work, args.python)
            for r in range(args.runs):
                print(f"run {r + 1} of {args.runs}", flush=True)
                agent = measure_agent(work, kam, mq, args.python, r, args.quiet, args.rates)
                entry = {"agent": agent}
                if not args.no_baresip:
                    entry["baresip"] = measure_baresip(work, kam, r, args.quiet, args.rates)
                results["runs"].append(entry)
            if args.hour:
                results["hour_at_10"] = hour_at_10(work, kam, mq, args.python)
        finally:
            kam.stop()
            mq.stop()
    print_summary(results, args.rates)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.plot and results["runs"]:
        print(f"plot: {plot_memory(results, args.plot) or args.plot}")
    return 0


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def print_summary(results: dict, rates: tuple[int, ...] = RATES) -> None:
    runs = results["runs"]
    print(f"\nmedian (min-max) of {len(runs)} runs, MB; agent on {results['python']}")
    for who in ("agent", "baresip"):
        if not runs or who not in runs[0]:
            continue
        idle = [r[who]["idle"] for r in runs]
        rss, anon, pss = ([i[k] for i in idle] for k in ("rss", "anon", "pss"))
        print(f"{who:8} idle RSS {_spread(rss)}, anonymous {_spread(anon)}, PSS {_spread(pss)}")
        for rate in rates:
            floods = [r[who]["floods"][rate] for r in runs]
            print(f"{who:8} {rate}/s x {FLOOD_S:g} s: peak RSS "
                  f"{_spread([f['peak']['rss'] for f in floods])}, a minute after "
                  f"{_spread([f['after_quiet']['rss'] for f in floods])}")  # fmt: skip
    print("memory by layer, cumulative (fresh interpreter, as `sipagent run` loads them):")
    previous = (0.0, 0.0)
    for label, rss, anon in results["layers"]:
        print(f"  {label:56} RSS {rss:5.1f} (+{rss - previous[0]:4.1f})  anonymous "
              f"{anon:5.1f} (+{anon - previous[1]:4.1f}) MB")  # fmt: skip
        previous = (rss, anon)
    latency = results.get("answer_latency")
    if latency:
        print(f"MESSAGE -> 200 at the sender, p50: {latency}")
    if "hour_at_10" in results:
        print(f"10/s for an hour: {results['hour_at_10']}")


if __name__ == "__main__":
    raise SystemExit(main())
