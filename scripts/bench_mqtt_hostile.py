#!/usr/bin/env python3
"""What hostile MQTT input costs the agent: memory, CPU, drops, and whether it still answers.

    .venv/bin/python scripts/bench_mqtt_hostile.py [--flood 20000] [--json results.json]

Starts its own Mosquitto and a direct-mode agent (mock pins, default access limits, the
MQTT identity allowed), then, one after the other:
  - a flood of `--flood` QoS 1 `B/command` lines as fast as one client can publish: how many
    the agent took (one `command/result` each) and dropped, its CPU time and peak memory;
  - the same number of `B/presence/set` payloads nested 2000 deep (the most parsing a
    payload within that topic's 2 KiB bound can ask for);
  - 5000 `B/message/send` payloads of 16 KB (each refused after parsing; 80 MB in all);
  - 2000 payloads of 100 KB on `B/output/gate/set` (each over its 256-byte bound);
  - one 20 MB `B/command` (over the topic's bound: dropped on paho's thread, answered);
and after each, how long `status` over MQTT takes to be answered. Never run by the tests:
figures belong here, not in asserts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from benchlib.procstat import cpu_seconds, rss_mb

from lab.agentproc import AgentProcess
from lab.configs import agent_toml
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe
from lab.ports import free_port


class UnboundedBroker(Mosquitto):
    """Mosquitto that queues every message for a slow subscriber (by default it drops QoS 0
    past 1000 queued), so that what the agent did not take was dropped by the agent."""

    def _config(self) -> str:
        return super()._config() + "max_queued_messages 0\n"


def peak_mb(pid: int) -> float:
    """VmHWM: the process's resident high-water mark so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


class Bench:
    def __init__(self, agent: AgentProcess, probe: MqttProbe, publisher: MqttProbe, base: str):
        self.agent, self.probe, self.publisher, self.base = agent, probe, publisher, base
        self.pid = agent.proc.pid

    def status_s(self) -> float:
        """Seconds from publishing `status` to a result for it, asking again every 2 s: in a
        flood the inbox may be full when it arrives, and then it is dropped like the rest."""
        start = time.perf_counter()
        while time.perf_counter() - start < 300:
            self.probe.publish(f"{self.base}/command", "status")
            try:
                self.probe.wait_for(
                    f"{self.base}/command/result",
                    lambda m: m.json()["command"] == "status",
                    timeout=2,
                )
            except AssertionError:
                continue
            return time.perf_counter() - start
        raise RuntimeError("status not answered within 300 s")

    def attack(self, name: str, topic: str, payloads: list[bytes]) -> dict[str, object]:
        """Publish every payload at QoS 1 without waiting: the broker queues what the agent
        has not read yet (max_queued_messages 0), so what is not answered the agent dropped."""
        results_before = len(self.probe.messages(f"{self.base}/command/result"))
        cpu0, rss0 = cpu_seconds(self.pid), rss_mb(self.pid)
        start = time.perf_counter()
        infos = [self.publisher.client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=120)
        sent_s = time.perf_counter() - start
        answered = self.status_s()  # drains behind the flood
        statuses = [
            m
            for m in self.probe.messages(f"{self.base}/command/result")[results_before:]
            if m.json()["command"] == "status"
        ]
        results = len(self.probe.messages(f"{self.base}/command/result")) - results_before
        results -= len(statuses)
        row = {
            "attack": name,
            "messages": len(payloads),
            "bytes_each": len(payloads[0]),
            "sent_in_s": round(sent_s, 2),
            "agent_cpu_s": round(cpu_seconds(self.pid) - cpu0, 2),
            "cpu_per_message_us": round(1e6 * (cpu_seconds(self.pid) - cpu0) / len(payloads), 1),
            "rss_before_mb": round(rss0, 1),
            "peak_rss_mb": round(peak_mb(self.pid), 1),
            "rss_after_mb": round(rss_mb(self.pid), 1),
            "status_answered_after_s": round(answered, 3),
            "alive": self.agent.proc.poll() is None,
        }
        if topic.endswith("/command"):
            row["results"] = results
            row["dropped"] = len(payloads) - results
        print(json.dumps(row), flush=True)
        return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=20000, help="messages per flood")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mqtt-hostile-"))
    rows: list[dict[str, object]] = []
    with UnboundedBroker(work / "mosquitto") as broker:
        config = agent_toml(
            listen=f"127.0.0.1:{free_port()}",
            mosquitto=broker,
            device_id="bench",
            allow=("owner", "mqtt:local"),
            log_level="warning",
        )
        agent = AgentProcess(work / "agent", config)
        try:
            agent.wait_ready()
            base = "sipagent/bench"
            probe = MqttProbe(broker.host, broker.port, topics=[f"{base}/command/result"])
            publisher = MqttProbe(broker.host, broker.port, topics=["bench/none"])
            bench = Bench(agent, probe, publisher, base)
            bench.status_s()
            print(f"idle: rss {rss_mb(bench.pid):.1f} MB, peak {peak_mb(bench.pid):.1f} MB")
            n = args.flood
            rows.append(bench.attack("flood of B/command", f"{base}/command", [b"on gat"] * n))
            nested = b"{" + b'"a":' + b"[" * 2000 + b"}"
            rows.append(
                bench.attack(
                    "flood of B/presence/set nested 2000 deep",
                    f"{base}/presence/set",
                    [nested] * n,
                )
            )
            padded = b'{"to": 5, "body": "' + b"x" * 16000 + b'"}'  # 16 KiB: within the bound
            rows.append(
                bench.attack(
                    "flood of 16 KB B/message/send", f"{base}/message/send", [padded] * 5000
                )
            )
            rows.append(
                bench.attack(
                    "2000 x 100 KB on B/output/gate/set",
                    f"{base}/output/gate/set",
                    [b"O" * 100_000] * 2000,
                )
            )
            # Last: VmHWM is a high-water mark, and this one sets it far above the floods'.
            big = b"on gate " * (20 * 1024 * 1024 // 8)
            rows.append(bench.attack("one 20 MB B/command", f"{base}/command", [big]))
            probe.close()
            publisher.close()
            pause = threading.Event()
            pause.wait(1)
            print(f"pins: gate {'on' if agent.pin(18) else 'off'} (must be off)")
        finally:
            agent.close()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
