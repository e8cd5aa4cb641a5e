"""The agent's figures: each function starts what it needs on the lab's servers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.adapters.heap import QUIET_S
from lab.agentproc import AgentProcess
from lab.configs import agent_toml
from lab.kamailio import Kamailio
from lab.mosquitto import Mosquitto
from lab.ports import free_port

from .flood import FloodResult, absorb_rate
from .procstat import idle_figures
from .sipclient import RawSipClient

FLOOD_RATES = (500, 1000, 2000, 3000, 4000, 6000, 8000)
BENCH_LIMITS = "rate_per_minute = 6000\nrate_burst = 1000"
COMMAND_RATE = 50  # per second: within the rate limit above


class Subscriber:
    """An MQTT subscriber in this process that timestamps what arrives (time.monotonic())."""

    def __init__(self, mq: Mosquitto, topic: str) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.connect(mq.host, mq.port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError(f"no SUBACK for {topic}")

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            key = json.loads(msg.payload).get("body", "")
        except ValueError:  # availability and other plain payloads
            key = msg.payload.decode(errors="replace")
        with self._lock:
            self.arrivals.setdefault(key, now)
            self.count += 1

    def wait_for(self, key: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while key not in self.arrivals:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{key!r} never arrived on MQTT")
            threading.Event().wait(0.01)

    def publish(self, topic: str, payload: str) -> float:
        sent = time.monotonic()
        self.client.publish(topic, payload, qos=1)
        return sent

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _agent(
    work: Path, name: str, kam: Kamailio, mq: Mosquitto | None, **kw: object
) -> AgentProcess:
    # The benchmark commands faster than a person: the highest rate limit the config allows.
    toml = agent_toml(
        kam, mosquitto=mq, device_id=name, log_level="warning", access_extra=BENCH_LIMITS, **kw
    )  # type: ignore[arg-type]
    agent = AgentProcess(work / name, toml)
    agent.wait_ready(30)
    return agent


def _owner(kam: Kamailio) -> RawSipClient:
    client = RawSipClient("owner", kam.users["owner"], kam.domain, (kam.host, kam.port))
    client.register()
    client.authenticate(kam.aor("agent"))
    return client


def start_and_stop(work: Path, kam: Kamailio, mq: Mosquitto, runs: int) -> tuple[list, list]:
    """start -> READY=1 (process start included), and SIGTERM -> exit, in ms."""
    ready, stop = [], []
    for i in range(runs):
        t0 = time.monotonic()
        agent = AgentProcess(work / f"start{i}", agent_toml(kam, mosquitto=mq, device_id="bench"))
        ready.append((agent.wait_ready(30) - t0) * 1000)
        t1 = time.monotonic()
        agent.terminate()
        agent.wait_exit(30)
        stop.append((time.monotonic() - t1) * 1000)
        agent.close()
    return ready, stop


def command_latency(work: Path, kam: Kamailio, count: int) -> tuple[list, list]:
    """`toggle lamp` via Kamailio: ms until the pin changed, and until the reply arrived."""
    agent = _agent(work, "cmd", kam, None)
    owner = _owner(kam)
    to_pin, to_reply = [], []
    start = time.monotonic()
    for i in range(count):
        while (due := start + i / COMMAND_RATE - time.monotonic()) > 0:
            owner.receive(due)
        sent = owner.send_message(kam.aor("agent"), "toggle lamp")
        while (msg := owner.receive(5)) is not None and not msg.text.startswith("MESSAGE"):
            pass
        if msg is None:
            raise RuntimeError("no reply to a command")
        to_reply.append((msg.at - sent) * 1000)
        to_pin.append((agent.pin_report(17)["changed_at"] - sent) * 1000)
    owner.close()
    agent.close()
    return to_pin, to_reply


def relay_latency(work: Path, kam: Kamailio, mq: Mosquitto, count: int, rate: float) -> list:
    """MESSAGEs via Kamailio at `rate`/s: ms until each is on B/message/in at a subscriber."""
    agent = _agent(work, "relay", kam, mq)
    sub = Subscriber(mq, "sipagent/relay/message/in")
    owner = _owner(kam)
    sent: dict[str, float] = {}
    start = time.monotonic()
    for i in range(count):
        # Paced by the clock, not by sleeping a fixed amount: bursts would not be 100/s.
        while time.monotonic() < start + i / rate:
            owner.receive(max(0.0, start + i / rate - time.monotonic()))
        body = f"ok: relay {i}"  # looks like a reply: relayed, never answered
        sent[body] = owner.send_message(kam.aor("agent"), body)
    deadline = time.monotonic() + 10
    while len(sub.arrivals) < count and time.monotonic() < deadline:
        owner.receive(0.05)
    latencies = [(sub.arrivals[b] - t) * 1000 for b, t in sent.items() if b in sub.arrivals]
    sub.close()
    owner.close()
    agent.close()
    if len(latencies) < count:
        raise RuntimeError(f"only {len(latencies)} of {count} messages reached MQTT")
    return latencies


def send_latency(work: Path, kam: Kamailio, mq: Mosquitto, count: int) -> list:
    """B/message/send published -> the MESSAGE arrives at a registered peer, in ms."""
    agent = _agent(work, "send", kam, mq)
    sub = Subscriber(mq, "sipagent/send/availability")
    sub.wait_for("online")  # the agent subscribes before it says online
    peer = RawSipClient("owner", kam.users["owner"], kam.domain, (kam.host, kam.port))
    peer.register()
    latencies = []
    for i in range(count):
        request = {"to": kam.aor("owner"), "body": f"note {i}", "id": str(i)}
        t0 = sub.publish("sipagent/send/message/send", json.dumps(request))
        while (msg := peer.receive(5)) is not None and not msg.text.startswith("MESSAGE"):
            pass
        if msg is None:
            raise RuntimeError("message/send never arrived at the peer")
        latencies.append((msg.at - t0) * 1000)
    sub.close()
    peer.close()
    agent.close()
    return latencies


def sustained(work: Path, kam: Kamailio, mq: Mosquitto, rate: int, seconds: float) -> dict:
    """MESSAGEs via Kamailio at `rate`/s for `seconds`, resent like any UDP client would:
    how many were answered and how many reached MQTT."""
    agent = _agent(work, "sustained", kam, mq)
    sub = Subscriber(mq, "sipagent/sustained/message/in")
    owner = _owner(kam)
    count = int(rate * seconds)

    def drain(timeout: float) -> None:
        while owner.receive(timeout) is not None:
            timeout = 0
        owner.retransmit()

    start = time.monotonic()
    for i in range(count):
        # Block until the next send is due (a busy loop would take a core from the agent).
        while (due := start + i / rate - time.monotonic()) > 0:
            drain(due)
        owner.send_message(kam.aor("agent"), f"ok: sustained {i}")
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 40
    while (owner.pending or len(sub.arrivals) < count) and time.monotonic() < deadline:
        drain(0.05)
    result = {
        "rate": rate,
        "sent": count,
        "send_seconds": round(elapsed, 2),
        "answered": owner.finals.get(200, 0),
        "failed": {code: n for code, n in owner.finals.items() if code != 200},
        "relayed": len(sub.arrivals),
        "retransmissions": owner.retransmissions,
    }
    sub.close()
    owner.close()
    agent.close()
    return result


def agent_idle(work: Path, kam: Kamailio, mq: Mosquitto, seconds: float) -> dict[str, float]:
    agent = _agent(work, "idle", kam, mq)
    figures = idle_figures(agent.proc.pid, seconds)
    agent.close()
    return figures


def agent_absorb(work: Path, seconds: float) -> tuple[int, list[FloodResult]]:
    """Direct mode, no MQTT, sipp flood: the SIP receive path and per-message work."""
    port = free_port()
    toml = agent_toml(
        listen=f"127.0.0.1:{port}", device_id="flood", on_forbidden="silent", log_level="warning"
    )
    agent = AgentProcess(work / "flood", toml)
    agent.wait_ready(30)
    result = absorb_rate(f"127.0.0.1:{port}", "agent", work, FLOOD_RATES, seconds)
    agent.close()
    return result


def memory_growth(work: Path, mq: Mosquitto, count: int, rate: int) -> dict[str, float]:
    """Resident memory idle, then after `count` MESSAGEs relayed (direct mode, outbox on)."""
    port = free_port()
    toml = agent_toml(
        listen=f"127.0.0.1:{port}", mosquitto=mq, device_id="growth", log_level="warning",
        on_forbidden="silent",
    )  # fmt: skip
    agent = AgentProcess(work / "growth", toml)
    agent.wait_ready(30)
    sub = Subscriber(mq, "sipagent/growth/message/in")
    before = idle_figures(agent.proc.pid, 5.0, settle=2.0)["idle_rss_mb"]
    # Straight to the agent (no proxy, no challenge): the agent's own memory is the question.
    sender = RawSipClient("owner", "", "127.0.0.1", ("127.0.0.1", port))
    start = time.monotonic()
    for i in range(count):
        while (due := start + i / rate - time.monotonic()) > 0:
            while sender.receive(due) is not None:
                due = 0
            sender.retransmit()
        sender.send_message(f"sip:agent@127.0.0.1:{port}", f"ok: growth {i}")
    deadline = time.monotonic() + 60
    while (sender.pending or sub.count < count) and time.monotonic() < deadline:
        sender.receive(0.05)
        sender.retransmit()
    # pjsip keeps each transaction 32 s (Timer J); the agent trims the heap after that.
    peak = idle_figures(agent.proc.pid, 1.0, settle=0.0)["idle_rss_mb"]
    after = idle_figures(agent.proc.pid, 5.0, settle=QUIET_S + 5)["idle_rss_mb"]
    relayed = len(sub.arrivals)
    sub.close()
    sender.close()
    agent.close()
    return {
        "messages": count,
        "relayed": relayed,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "rss_after_mb": after,
    }
