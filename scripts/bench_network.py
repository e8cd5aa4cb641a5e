#!/usr/bin/env python3
"""How fast the agent recovers on a real network (needs root: it builds network namespaces).

    sudo .venv/bin/python scripts/bench_network.py [--runs 3] [--json results.json]

The NAT lab of the tests (lab/netns.py): the agent in "home" behind a masquerading
router, Kamailio and a peer in "internet". For each run it measures:
- link cut for 20 s, then restored -> STATUS "SIP registered" again, and -> a command MESSAGE
  from the peer answered;
- the home address changes -> registered again with the new binding.
Times are wall clock on this machine, reported as numbers (never asserted).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from lab.agentproc import AgentProcess
from lab.kamailio import Kamailio
from lab.netns import SERVER, NatLab
from lab.peer import Peer
from lab.waiting import wait_until

CONFIG = """[device]
id = "bench"
[sip]
uri = "{aor}"
registrar = "{registrar}"
password = "agentpw"
listen = "0.0.0.0:0"
presence = "off"
[sip.nat]
keepalive_s = 2
[sip.recovery]
check_s = {check}
retry_min_s = 1
retry_max_s = 8
[access]
allow = ["{owner}"]
[gpio]
pin_factory = "mock"
[gpio.outputs.lamp]
pin = "GPIO17"
"""


def registered_after(agent: AgentProcess, mark: int, timeout: float) -> float:
    def found() -> float | None:
        for t, fields in agent.notify.messages[mark:]:
            if re.search(r"SIP registered as ", fields.get("STATUS", "")):
                return t
        return None

    return wait_until(found, timeout, "registered again", interval=0.01)


def one_run(work: Path, check_s: int) -> dict[str, float]:
    with (
        NatLab(udp_timeout_s=5) as lab,
        Kamailio(work / "kamailio", host=SERVER, netns=lab.internet) as kam,
    ):
        text = CONFIG.format(
            aor=kam.aor("agent"), registrar=kam.registrar_uri, owner=kam.aor("owner"),
            check=check_s,
        )  # fmt: skip
        agent = AgentProcess(work / "agent", text, netns=lab.home)
        owner = Peer.start(
            uri=kam.aor("owner"), registrar=kam.registrar_uri, proxy=kam.proxy_uri,
            username="owner", password="ownerpw", listen=f"{SERVER}:0",
            workdir=work / "peer", netns=lab.internet,
        )  # fmt: skip
        try:
            owner.wait_registered()
            agent.wait_ready()
            lab.cut_link()
            cut = time.monotonic()
            wait_until(lambda: time.monotonic() - cut >= 20, 25, "20 s cut", interval=0.2)
            mark = len(agent.notify.messages)
            lab.restore_link()
            restored = time.monotonic()
            back = registered_after(agent, mark, 60) - restored
            owner.send(kam.aor("agent"), "on lamp", timeout=20)
            owner.wait_message(timeout=20)
            reachable = time.monotonic() - restored
            mark = len(agent.notify.messages)
            changed = time.monotonic()
            lab.change_home_address(23)
            moved = registered_after(agent, mark, 30) - changed
        finally:
            owner.close()
            agent.close()
    return {"restore_to_registered_s": back, "restore_to_reply_s": reachable,
            "address_change_to_registered_s": moved}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", type=int, default=4, help="sip.recovery.check_s")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="sipagent-netbench-") as tmp:
        for i in range(args.runs):
            runs.append(one_run(Path(tmp) / f"run{i}", args.check))
            print(json.dumps(runs[-1]), flush=True)
    summary = {
        key: {"median": statistics.median(r[key] for r in runs), "max": max(r[key] for r in runs)}
        for key in runs[0]
    }
    print(json.dumps({"check_s": args.check, "runs": args.runs, "summary": summary}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
