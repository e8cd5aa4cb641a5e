#!/usr/bin/env python3
"""How fast a provider's servers are found and changed (needs root: the DNS server uses port 53).

    sudo .venv/bin/python scripts/bench_dns.py [--runs 5] [--json results.json]

The lab of tests/system/test_dns_srv.py: dnsmasq serving `_sip._udp.sipagent.test` -> k1 (priority
10) and k2 (priority 20), two Kamailios on loopback. It measures:
- resolution: an SRV lookup with its A/AAAA lookups through pjsip's resolver
  (agent.adapters.sip.dns), from the server and then from pjsip's cache;
- start -> READY=1 (registered through the SRV target);
- failover: k1 stopped -> STATUS "registered via k2", with the periodic check at 1 s and at
  the default 60 s (the worst case waits a whole check; a refresh by pjsua would too).
Wall clock on this machine, reported as numbers (never asserted).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.agentproc import AgentProcess
from lab.dns import DOMAIN, K1, K2, DnsServer, provider_config, srv_zone
from lab.kamailio import Kamailio
from lab.ports import free_port
from lab.waiting import wait_until

RESOLVE = """
import sys, time, pjsua2 as pj
from agent.adapters.sip.dns import SrvLookup
ep = pj.Endpoint(); ep.libCreate()
cfg = pj.EpConfig(); cfg.uaConfig.threadCnt = 0; cfg.uaConfig.mainThreadOnly = True
cfg.uaConfig.nameserver.append({ns!r}); cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
ep.libInit(cfg); ep.libStart()
lookup = SrvLookup(); lookup.start()
for _ in range(2):
    got = []
    t0 = time.perf_counter()
    lookup.lookup({domain!r}, "udp", lambda t, w: got.append((t, w)))
    while not got:
        ep.libHandleEvents(1)
    print("RESULT", (time.perf_counter() - t0) * 1000, len(got[0][0] or []))
lookup.close(); ep.libDestroy()
"""


def resolution(dns: DnsServer) -> tuple[float, float]:
    code = RESOLVE.format(ns=dns.address, domain=DOMAIN)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = [line.split() for line in out.stdout.splitlines() if line.startswith("RESULT")]
    first, cached = (float(fields[1]) for fields in lines[:2])
    return first, cached


def failover(work: Path, dns: DnsServer, k1: Kamailio, check_s: int) -> tuple[float, float]:
    text = provider_config(dns).replace("check_s = 2", f"check_s = {check_s}")
    agent = AgentProcess(work / f"agent{time.monotonic_ns()}", text)
    try:
        started = time.monotonic()
        ready = agent.wait_ready(timeout=30) - started
        k1.stop()
        stopped = time.monotonic()
        wait_until(
            lambda: any("via k2." in s for s in agent.notify.statuses()),
            check_s + 60,
            "failover to k2",
            interval=0.01,
        )
        return ready, time.monotonic() - stopped
    finally:
        agent.close()
        k1.start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    results: dict[str, list[float]] = {
        "resolve_ms": [], "resolve_cached_ms": [], "ready_s": [], "failover_check1_s": [],
        "failover_check60_s": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        k1 = Kamailio(work / "k1", port=free_port(), host=K1, domain=DOMAIN)
        k2 = Kamailio(work / "k2", port=free_port(), host=K2, domain=DOMAIN)
        with k1, k2, DnsServer(work / "dns", srv_zone(k1.port, k2.port)) as dns:
            for _ in range(args.runs):
                first, cached = resolution(dns)
                results["resolve_ms"].append(first)
                results["resolve_cached_ms"].append(cached)
                ready, moved = failover(work, dns, k1, 1)
                results["ready_s"].append(ready)
                results["failover_check1_s"].append(moved)
            results["failover_check60_s"].append(failover(work, dns, k1, 60)[1])
    for key, values in results.items():
        print(f"{key:22} median {statistics.median(values):8.3f}  max {max(values):8.3f}  "
              f"(n={len(values)})")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
