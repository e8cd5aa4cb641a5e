"""MESSAGE -> 200 at the sender: what answering after the commit costs (pjproject 2.16+).

The same binding, the same direct-mode agent with MQTT and the durable outbox, answering
once as pjproject 2.16+ lets it (200 after the message is stored:
agent.adapters.sip.answers) and once as pjsua does by itself (200 before the callback runs).
A raw UDP client sends one MESSAGE at a time and times the 200.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from lab.configs import agent_toml
from lab.mosquitto import Mosquitto
from lab.notify import NotifyListener
from lab.ports import free_port

from .procstat import percentile
from .sipclient import RawSipClient

REPO = Path(__file__).resolve().parents[2]
# The agent with pjsua's automatic 200, on a binding that could defer (for comparison only).
AUTO = (
    "import agent.adapters.sip.binding as b; b.defers_answers = lambda pj: False; "
    "from agent.cli import main; raise SystemExit(main(sys.argv[1:]))"
)
SAMPLES = 500
RATE = 100.0


def _agent(work: Path, mq: Mosquitto, python: str, auto: bool) -> tuple:
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "agent.toml"
    config.write_text(
        agent_toml(listen=f"127.0.0.1:{port}", mosquitto=mq, device_id="lat", log_level="warning")
    )
    notify = NotifyListener(work / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "STATE_DIRECTORY": str(work)}
    env["PYTHONPATH"] = str(REPO)
    head = [python, "-c", "import sys; " + AUTO] if auto else [python, "-m", "agent"]
    proc = subprocess.Popen(
        [*head, "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "agent.log").open("ab"),
    )
    notify.wait_for("READY", "1", 30)
    return proc, notify, port


def _latencies(port: int) -> list[float]:
    client = RawSipClient("owner", "", "127.0.0.1", ("127.0.0.1", port))
    to = f"sip:agent@127.0.0.1:{port}"
    out = []
    start = time.monotonic()
    for i in range(SAMPLES):
        while (due := start + i / RATE - time.monotonic()) > 0:
            client.receive(due)
        sent = client.send_message(to, f"ok: latency {i}")
        while client.pending:
            msg = client.receive(5)
            if msg is None:
                raise RuntimeError("no answer to a MESSAGE")
            if not msg.is_request and msg.status >= 200:
                out.append((msg.at - sent) * 1000)
    client.close()
    return out


def answer_latency(work: Path, python: str) -> dict[str, float] | None:
    """p50/p99 (ms) of MESSAGE -> 200, deferred and automatic; None on a 2.15 binding."""
    check = subprocess.run(
        [python, "-c", "import pjsua2, sys; from agent.adapters.sip.binding import defers_answers; "
         "sys.exit(0 if defers_answers(pjsua2) else 1)"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False, capture_output=True,
    )  # fmt: skip
    if check.returncode != 0:
        return None  # nothing to compare: pjsua 2.15 always answers by itself
    mq = Mosquitto(work / "lat-mosquitto")
    mq.start()
    figures: dict[str, float] = {}
    try:
        for auto in (False, True, False, True):
            proc, notify, port = _agent(work / f"lat-{auto}-{len(figures)}", mq, python, auto)
            threading.Event().wait(2)
            values = _latencies(port)
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            notify.close()
            name = "automatic" if auto else "deferred"
            figures.setdefault(f"{name}_p50_ms", 0.0)
            figures[f"{name}_p50_ms"] += statistics.median(values) / 2
            figures[f"{name}_p99_ms"] = max(
                figures.get(f"{name}_p99_ms", 0.0), percentile(values, 0.99)
            )
    finally:
        mq.stop()
    figures = {k: round(v, 3) for k, v in figures.items()}
    figures["cost_p50_ms"] = round(figures["deferred_p50_ms"] - figures["automatic_p50_ms"], 3)
    return figures


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(answer_latency(Path(tmp), sys.argv[1] if len(sys.argv) > 1 else sys.executable))
