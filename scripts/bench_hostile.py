#!/usr/bin/env python3
"""What floods cost the agent now: INVITE, MESSAGE, SUBSCRIBE and TCP connection floods.

    .venv/bin/python scripts/bench_hostile.py [--seconds 5] [--json out.json]

Each flood is sent from a raw client in this process (lab/rawsip.py) at a fixed rate to
a direct-mode agent on loopback, with MQTT (a Mosquitto of its own). For each: whether the
agent survived and answered its owner afterwards, its CPU (% of one core) and peak resident
memory during the flood, and datagrams (and bytes) sent back per datagram received. Then the
memory the watchers cost at their bound. Never run by the tests (figures are not assertions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import select
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchlib.procstat import cpu_seconds, rss_mb

from lab.agentproc import AgentProcess
from lab.configs import DOOR_CONFIG, agent_toml
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe
from lab.ports import free_port
from lab.rawsip import SDP, UdpPeer, request
from lab.soundness import DirectOwner
from lab.waiting import wait_until


class Sampler:
    """Peak RSS of `pid` every 20 ms, and its CPU time, between start and stop."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> Sampler:
        self.cpu0, self.t0 = cpu_seconds(self.pid), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_pct = 100 * (cpu_seconds(self.pid) - self.cpu0) / (time.monotonic() - self.t0)


def paced(rate: int, seconds: float, send: Callable[[int], None]) -> int:
    """Call `send(i)` `rate` times a second for `seconds`; how many were sent."""
    total, start = int(rate * seconds), time.monotonic()
    for i in range(total):
        lag = start + i / rate - time.monotonic()
        if lag > 0.001:
            time.sleep(lag)
        send(i)
    return total


class Bench:
    def __init__(self, work: Path, seconds: float) -> None:
        self.work, self.seconds = work, seconds
        self.broker = Mosquitto(work / "mosquitto")
        self.broker.start()
        self.results: list[dict[str, object]] = []

    @contextlib.contextmanager
    def agent(
        self, name: str, **config: object
    ) -> Iterator[tuple[AgentProcess, tuple[str, int], MqttProbe]]:
        """An agent with an MQTT probe on its topics; stopped at the end."""
        port = free_port()
        device = f"bench-{name.lower()}"
        probe = MqttProbe(self.broker.host, self.broker.port, topics=(f"sipagent/{device}/#",))
        text = agent_toml(listen=f"127.0.0.1:{port}", mosquitto=self.broker, device_id=device,
                          log_level="warning", **config)  # type: ignore[arg-type]  # fmt: skip
        agent = AgentProcess(self.work / name, text)
        try:
            agent.wait_ready(30)
            yield agent, ("127.0.0.1", port), probe
        finally:
            probe.close()
            agent.close()

    def record(self, row: dict[str, object]) -> dict[str, object]:
        print(json.dumps(row), flush=True)
        self.results.append(row)
        return row

    def flood(self, name: str, rate: int, make: Callable[[UdpPeer, str, int], bytes],
              answer: bool = True, **config: object) -> dict[str, object]:  # fmt: skip
        with self.agent(f"{name}-{rate}", **config) as (agent, address, probe):
            uri = f"sip:agent@{address[0]}:{address[1]}"
            attacker = UdpPeer("127.0.0.2", answer=answer)
            idle = rss_mb(agent.proc.pid)
            with Sampler(agent.proc.pid) as sample:
                sent = paced(rate, self.seconds, lambda i: attacker.send(make(attacker, uri, i),
                                                                         address))  # fmt: skip
                owner = DirectOwner(address)
                answered = owner.status(30).startswith("ok:")
            row = {
                "flood": name, "rate_per_s": rate, "seconds": self.seconds, "sent": sent,
                "alive_and_answering": answered and agent.proc.poll() is None,
                "cpu_pct": round(sample.cpu_pct, 1), "rss_idle_mb": round(idle, 1),
                "rss_peak_mb": round(sample.peak, 1),
                "datagrams_out_per_in": round(len(attacker.snapshot()) / sent, 3),
                "bytes_out_per_in": round(attacker.bytes_in / attacker.bytes_out, 3),
                "relayed": len(probe.messages("sipagent/+/message/in")),
            }  # fmt: skip
            owner.close()
            attacker.close()
        return self.record(row)

    def watchers_at_bound(self, bound: int = 128) -> dict[str, object]:
        """Resident memory with `bound` watchers (the default sip.limits.watchers)."""
        senders = [f"sip:w{i}@127.0.0.2" for i in range(bound // 8)]
        extra = DOOR_CONFIG + "watchers = [" + ", ".join(f'"{s}"' for s in senders) + "]\n"
        with self.agent("watchers", presence="serve", extra=extra) as (agent, address, _):
            uri = f"sip:agent@{address[0]}:{address[1]}"
            watcher = UdpPeer("127.0.0.2")
            before = rss_mb(agent.proc.pid)
            for i in range(bound + 20):  # 20 more than the bound: refused
                raw = request("SUBSCRIBE", uri, local=watcher.address,
                              sender=senders[i % len(senders)],
                              extra=["Event: presence", "Expires: 600"])  # fmt: skip
                watcher.send(raw, address)
                time.sleep(1 / 15)  # under sip.limits.subscribe_per_s
            wait_until(lambda: len(watcher.requests("NOTIFY")) >= bound, 30, "first NOTIFYs")
            accepted = len([r for r in watcher.snapshot() if r.status == 200])
            after = rss_mb(agent.proc.pid)
            notified = len(watcher.requests("NOTIFY"))
            agent.drive(27, False)
            wait_until(lambda: len(watcher.requests("NOTIFY")) >= notified + accepted, 30, "NOTIFY")
            row = {
                "figure": "watchers at their bound", "accepted": accepted, "offered": bound + 20,
                "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
                "kb_per_watcher": round(1024 * (after - before) / max(accepted, 1), 1),
                "notifies_per_change": len(watcher.requests("NOTIFY")) - notified,
            }  # fmt: skip
            watcher.close()
        return self.record(row)

    def tcp_churn(self, rounds: int = 20) -> dict[str, object]:
        """Connections opened from 58 addresses and closed at once, `rounds` times."""
        made = 0
        with self.agent("tcp", transport="tcp") as (agent, address, _):
            with Sampler(agent.proc.pid) as sample:
                for _ in range(rounds):
                    socks = []
                    for i in range(58):
                        sock = socket.socket()
                        sock.bind((f"127.0.1.{i + 1}", 0))
                        sock.setblocking(False)
                        sock.connect_ex(address)
                        socks.append(sock)
                    ok = _established(socks, within=3.0)
                    made += ok
                    for sock in socks:
                        sock.close()
                alive = DirectOwner(address, transport="tcp").status(30).startswith("ok:")
            row = {
                "figure": "TCP connection churn", "connections_tried": 58 * rounds,
                # As the client saw it: the kernel completes handshakes pjsip never accepts.
                "connected_client_side": made, "alive_and_answering": alive,
                "breaker_tripped": "too many SIP connections" in agent.log.read_text(),
                "cpu_pct": round(sample.cpu_pct, 1), "rss_peak_mb": round(sample.peak, 1),
            }  # fmt: skip
        return self.record(row)


def _established(socks: list[socket.socket], within: float) -> int:
    """How many of the connecting `socks` are connected within `within` seconds."""
    pending, made, deadline = list(socks), 0, time.monotonic() + within
    while pending and (left := deadline - time.monotonic()) > 0:
        _, writable, _ = select.select([], pending, [], left)
        for sock in writable:
            pending.remove(sock)
            made += sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    return made


def invite(peer: UdpPeer, uri: str, i: int) -> bytes:
    return request("INVITE", uri, local=peer.address, sender=f"sip:s{i}@198.51.100.{i % 250}",
                   body=SDP, content_type="application/sdp")  # fmt: skip


def message(peer: UdpPeer, uri: str, i: int) -> bytes:
    return request("MESSAGE", uri, local=peer.address, sender=f"sip:s{i}@198.51.100.7",
                   body=f"bench {i} on gate", content_type="text/plain")  # fmt: skip


def subscribe(peer: UdpPeer, uri: str, i: int) -> bytes:
    return request("SUBSCRIBE", uri, local=peer.address, sender="sip:owner@127.0.0.1",
                   extra=["Event: presence", "Expires: 600"])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        bench = Bench(Path(tmp), args.seconds)
        try:
            for rate in (1000, 5000):
                bench.flood("INVITE", rate, invite)
            for rate in (500, 1000, 2000):
                bench.flood("MESSAGE", rate, message)
            bench.flood("SUBSCRIBE", 1000, subscribe, presence="serve", extra=DOOR_CONFIG)
            bench.watchers_at_bound()
            bench.tcp_churn()
        finally:
            bench.broker.stop()
    if args.json:
        meta = {"machine": platform.platform(), "python": platform.python_version()}
        args.json.write_text(json.dumps({"meta": meta, "results": bench.results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
