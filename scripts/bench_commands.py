#!/usr/bin/env python3
"""Measure the command path: decision cost in-process, and how exact pulses are end to end.

    .venv/bin/python scripts/bench_commands.py [--pulses 50] [--json out.json]

1. Dispatcher.handle (rate limit, parse, authorize, execute on a fake device) per command.
2. `pulse gate 100ms` sent by a peer through Kamailio to a real agent: how long the mock pin
   stayed on (from MockPin's own change record), minus 100 ms: the lateness of the owner
   loop's timer. Never run by the tests.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import statistics
import tempfile
import timeit
from pathlib import Path

from agent.config.load import parse_config
from agent.core.dispatch import Dispatcher
from agent.core.totp import totp
from lab.agentproc import AgentProcess
from lab.configs import agent_toml
from lab.fakes import FakeDevice
from lab.kamailio import Kamailio
from lab.peer import Peer
from lab.waiting import wait_until

KEY = b"bench-key-0123456789"
CONFIG = f"""
[device]
id = "bench"
[sip]
uri = "sip:bench@example.org"
[access]
allow = ["sip:owner@example.org"]
require_code = ["dimmer"]
rate_burst = 1000
rate_per_minute = 6000
[access.users."sip:alice@example.org"]
outputs = ["lamp", "dimmer"]
totp_secret = "{base64.b32encode(KEY).decode()}"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.lamp]
pin = 18
[gpio.outputs.dimmer]
pin = 12
"""


def dispatch_costs(n: int) -> dict[str, float]:
    """Microseconds per Dispatcher.handle call, best of 5 runs of n."""
    config = parse_config(CONFIG)
    now = [1000.0]
    wall = [1_700_000_000.0]
    dispatcher = Dispatcher(
        config.access, FakeDevice(), clock=lambda: now[0], wall_clock=lambda: wall[0]
    )

    def send(sender: str, body: str) -> None:
        now[0] += 60  # a full bucket every time: this measures the work, not the limit
        wall[0] += 30  # and a fresh one-time code
        dispatcher.handle(sender, body)

    code_now = lambda: totp(KEY, wall[0] + 30)  # noqa: E731 - the code send() will check
    cases = {
        "owner 'toggle lamp'": lambda: send('"Owner" <sip:owner@example.org>', "toggle lamp"),
        "owner 'help'": lambda: send("sip:owner@example.org", "help"),
        "stranger refused": lambda: send("sip:eve@example.org", "on gate"),
        "one-time code checked": lambda: send("sip:alice@example.org", f"{code_now()} on dimmer"),
    }
    # The decisions alone: the agent's log lines go to journald, which costs more.
    logging.disable(logging.CRITICAL)
    try:
        return {
            name: min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6 for name, fn in cases.items()
        }
    finally:
        logging.disable(logging.NOTSET)


def pulse_lateness(work: Path, kam: Kamailio, count: int) -> list[float]:
    agent = AgentProcess(
        work / "pulse", agent_toml(kam, device_id="bench", access_extra="rate_burst = 1000")
    )
    agent.wait_ready(30)
    owner = Peer.start(
        kam.aor("owner"), registrar=kam.registrar_uri, proxy=kam.proxy_uri,
        username="owner", password=kam.users["owner"], workdir=work,
    )  # fmt: skip
    owner.wait_registered()
    late = []
    for _ in range(count):
        before = len(agent.pin_history(18))
        owner.send(kam.aor("agent"), "pulse gate 100ms")
        owner.wait_message(timeout=10)
        history = wait_until(
            lambda b=before: (h := agent.pin_history(18))[b:] and len(h) >= b + 2 and h,
            10,
            "pulse end",
        )
        held = history[before + 1][0]
        late.append((held - 0.100) * 1000)
    owner.close()
    agent.close()
    return late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pulses", type=int, default=50)
    parser.add_argument("--json")
    args = parser.parse_args()
    costs = dispatch_costs(2000)
    with tempfile.TemporaryDirectory() as tmp, Kamailio(Path(tmp) / "kam") as kam:
        late = pulse_lateness(Path(tmp), kam, args.pulses)
    ordered = sorted(late)
    pulse = {
        "n": len(late),
        "p50_ms": round(statistics.median(late), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 3),
        "max_ms": round(max(late), 3),
        "min_ms": round(min(late), 3),
    }
    print("Dispatcher.handle, µs per command, logging off (best of 5 x 2000):")
    for name, us in costs.items():
        print(f"  {name:28s} {us:8.1f}")
    print(f"pulse gate 100ms, lateness of the end: {json.dumps(pulse)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"dispatch_us": costs, "pulse_late": pulse}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
