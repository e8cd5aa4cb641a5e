#!/usr/bin/env python3
"""Measure the MQTT relay with the durable outbox on: MESSAGE in -> `message/in` at a subscriber.

    .venv/bin/python scripts/bench_relay.py [--latency 500] [--flood 20000] [--rate 2000]

A raw UDP sender here plays the SIP peer, straight to a direct-mode agent (no Kamailio hop:
this isolates what the agent adds; Kamailio adds its own relay time on top). Latency: one
MESSAGE at a time, from just before `sendto` to the subscriber's callback. Flood: MESSAGEs
paced at --rate per second; the figure is the rate at which records reached the subscriber
and whether every one arrived. Never run by the tests: timing belongs here, not in asserts.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lab.agentproc import AgentProcess
from lab.configs import agent_toml
from lab.mosquitto import Mosquitto
from lab.ports import free_port
from lab.waiting import wait_until


class Subscriber:
    """Records the arrival time of every `message/in` record by its body."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-relay")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.set()
        client.on_message = self._on_message
        client.connect(broker.host, broker.port)
        client.loop_start()
        self.client = client
        if not self.subscribed.wait(10):
            raise RuntimeError("no SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        body = json.loads(msg.payload)["body"]
        with self.lock:
            self.arrived.setdefault(body, now)

    def count(self) -> int:
        with self.lock:
            return len(self.arrived)


def message(port: int, source_port: int, seq: int, body: str) -> bytes:
    text = (
        f"MESSAGE sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{source_port};branch=z9hG4bK-b{seq}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=bench\r\n"
        f"To: <sip:agent@127.0.0.1>\r\nCall-ID: bench-{seq}@127.0.0.1\r\nCSeq: 1 MESSAGE\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )
    return text.encode()


OKS: set[bytes] = set()


def drain(sock: socket.socket) -> None:
    """Collect the Call-IDs of the 200 OKs: what the agent accepted."""
    try:
        while True:
            data = sock.recv(65535)
            if data.startswith(b"SIP/2.0 200"):
                for line in data.split(b"\r\n"):
                    if line.lower().startswith(b"call-id:"):
                        OKS.add(line.split(b":", 1)[1].strip())
    except OSError:
        return


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--latency", type=int, default=500, help="messages, one at a time")
    parser.add_argument("--flood", type=int, default=20000, help="messages in the flood")
    parser.add_argument("--rate", type=int, default=2000, help="flood rate, messages/s")
    parser.add_argument("--profile", help="py-spy raw output file for the flood")
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sipagent-bench-relay-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        broker.start()
        port = free_port("udp")
        config = agent_toml(
            None, listen=f"127.0.0.1:{port}", mosquitto=broker, device_id="bench", allow=()
        )
        config = config.replace('level = "debug"', 'level = "warning"')
        config += f'\n[outbox]\nsynchronous = "{args.synchronous}"\ncapacity = 1000000\n'
        agent = AgentProcess(work / "agent", config)
        try:
            agent.wait_ready(30)
            sub = Subscriber(broker, "sipagent/bench/message/in")
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            src = sock.getsockname()[1]
            # Drain the 200 OKs in the background so the socket buffer never fills.
            threading.Thread(target=drain, args=(sock,), daemon=True).start()
            pause = threading.Event()
            latencies = []
            for i in range(args.latency):
                body = f"ok: lat {i}"
                t0 = time.perf_counter()
                sock.sendto(message(port, src, i, body), ("127.0.0.1", port))
                wait_until(lambda b=body: b in sub.arrived, 10, f"record {i}", interval=0.0002)
                latencies.append((sub.arrived[body] - t0) * 1000)
                pause.wait(0.002)
            if args.profile:
                import subprocess

                subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "-d", "4", "-f",
                     "raw", "-o", args.profile, "-p", str(agent.proc.pid)]
                )  # fmt: skip
            base = sub.count()
            start = time.perf_counter()
            for i in range(args.flood):
                due = start + i / args.rate
                while (now := time.perf_counter()) < due:
                    pause.wait(min(due - now, 0.001))
                seq = args.latency + i
                sock.sendto(message(port, src, seq, f"ok: flood {i}"), ("127.0.0.1", port))
            sent_s = time.perf_counter() - start

            # A datagram the agent could not take in time is dropped by the kernel and never
            # answered (a real UA would retransmit it): only what got a 200 OK was accepted.
            def relayed_all_accepted() -> bool:
                return sub.count() - base >= len(OKS) - args.latency

            wait_until(relayed_all_accepted, 120, "every accepted MESSAGE relayed", interval=0.05)
            pause.wait(0.5)  # late 200 OKs still in flight
            wait_until(relayed_all_accepted, 120, "every accepted MESSAGE relayed", interval=0.05)
            accepted = len(OKS) - args.latency
            last = max(t for b, t in sub.arrived.items() if b.startswith("ok: flood"))
            relayed_s = last - start
        finally:
            agent.close()
            broker.stop()
    print(f"MESSAGE -> message/in (direct UDP, outbox synchronous={args.synchronous})")
    print(
        f"  latency n={len(latencies)}: p50 {statistics.median(latencies):.2f} ms, "
        f"p99 {pct(latencies, 0.99):.2f} ms, max {max(latencies):.2f} ms"
    )
    relayed = accepted  # waited for above: every accepted one reached the subscriber
    print(
        f"  flood: {args.flood} sent in {sent_s:.2f} s ({args.flood / sent_s:.0f}/s); "
        f"{accepted} accepted (200 OK), {relayed} relayed, the last {relayed_s:.2f} s after "
        f"the first was sent ({relayed / relayed_s:.0f}/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
