"""What a second SIP account costs: start to READY=1 and resident memory, one account
against two (a PBX and a provider, two private Kamailios on loopback), three runs each.

    .venv/bin/python scripts/bench_accounts.py
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

from lab.agentproc import AgentProcess
from lab.configs import agent_toml
from lab.kamailio import Kamailio

RUNS = 3
SETTLE_S = 3.0  # after READY, before memory is read


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in kB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["RssAnon"].split()[0])


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-accounts-"))
    pbx = Kamailio(workdir / "pbx", domain="pbx.test")
    provider = Kamailio(workdir / "provider", domain="provider.test")
    pbx.start()
    provider.start()
    second = f"""
[[sip.accounts]]
name = "public"
uri = "{provider.aor("agent")}"
registrar = "{provider.registrar_uri}"
password = "agentpw"
listen = "127.0.0.1:0"
"""
    try:
        for label, extra in (("one account", ""), ("two accounts", second)):
            for run in range(RUNS):
                config = agent_toml(pbx, extra=extra, log_level="info")
                agent = AgentProcess(workdir / f"{label.replace(' ', '_')}{run}", config)
                started = time.monotonic()
                agent.wait_ready()
                ready_ms = (time.monotonic() - started) * 1000
                threading.Event().wait(SETTLE_S)
                rss, anon = _memory_kb(agent.proc.pid)
                agent.close()
                print(f"{label}: READY after {ready_ms:4.0f} ms, RSS {rss / 1024:.1f} MB "
                      f"(anonymous {anon / 1024:.1f} MB)")  # fmt: skip
    finally:
        pbx.stop()
        provider.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
