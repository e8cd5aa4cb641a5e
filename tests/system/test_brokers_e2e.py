"""Several brokers (mqtt.hosts) on real parts: failover to the next, failback to the first.

Two private Mosquittos, independent (not bridged): a subscriber on each, with a fixed client
id and ``clean_session=False`` so what a broker accepted reaches its subscriber even across
that broker's restart (docs/mqtt.md). Records carry stable ids: repeats of messages that
were in flight at the switch are dropped by id, as a consumer would.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from lab.configs import agent_toml
from lab.mqttprobe import MqttProbe
from lab.waiting import wait_until

FAILBACK_S = 2


def _hosts_toml(kamailio, brokers, device_id: str) -> str:  # type: ignore[no-untyped-def]
    """The lab's agent config with mqtt.hosts = the brokers, instead of mqtt.host/port."""
    first = brokers[0]
    text = agent_toml(
        kamailio,
        mosquitto=first,
        device_id=device_id,
        mqtt_options={"reconnect_max": 1, "failback": FAILBACK_S},
    )
    single = f'host = "{first.host}"\nport = {first.port}\n'
    assert single in text
    hosts = json.dumps([f"{b.host}:{b.port}" for b in brokers])
    return text.replace(single, f"hosts = {hosts}\n")


def _seen(probe: MqttProbe, topic: str) -> list[str]:
    """Bodies in order of first arrival (a repeat carries the same id)."""
    first: dict[str, str] = {}
    for message in probe.messages(topic):
        record = json.loads(message.payload)
        first.setdefault(record["id"], record["body"])
    return list(first.values())


def _send_in_order(peer, to: str, bodies: list[str]) -> None:  # type: ignore[no-untyped-def]
    for body in bodies:
        sent = peer.send(to, body)
        assert sent["code"] == 200, sent


def _connected_to(agent, broker) -> bool:  # type: ignore[no-untyped-def]
    statuses = agent.notify.statuses()
    return bool(statuses) and f"MQTT connected to {broker.host}:{broker.port}" in statuses[-1]


def test_failover_to_the_next_broker_and_back_loses_nothing_and_keeps_the_order(
    kamailio_factory, mosquitto_factory, agent_factory, peer_factory, device_id
):
    B = f"sipagent/{device_id}"
    inbound, availability = f"{B}/message/in", f"{B}/availability"
    kamailio = kamailio_factory()
    first, second = mosquitto_factory(), mosquitto_factory()
    probes = [
        MqttProbe(
            broker.host,
            broker.port,
            [inbound, availability],
            client_id=f"{name}-{device_id}",
            clean_session=False,
        )
        for name, broker in (("first", first), ("second", second))
    ]
    on_first, on_second = probes
    agent = agent_factory(_hosts_toml(kamailio, [first, second], device_id))
    agent.wait_ready()
    wait_until(lambda: _connected_to(agent, first), 10, "the agent on the preferred broker")
    owner = peer_factory("owner", server=kamailio)
    to = kamailio.aor("agent")

    # The first broker dies while a stream of MESSAGEs comes in. One at a time, each accepted
    # (200) before the next leaves: the agent's order is then the sending order (concurrent
    # MESSAGEs over UDP may arrive in any order).
    stream = [f"ok: stream {i:03d}" for i in range(200)]
    _send_in_order(owner, to, stream[:100])
    first.stop()  # the last ones may be in flight to A, or not even published yet
    _send_in_order(owner, to, stream[100:])

    wait_until(lambda: _connected_to(agent, second), 20, "the agent to move to B")
    on_second.wait_for(availability, lambda m: m.payload == b"online")
    # Whatever A had not acknowledged arrives on B, oldest first, up to the last message.
    wait_until(lambda: _seen(on_second, inbound)[-1:] == stream[-1:], 20, "the stream on B")
    on_b = _seen(on_second, inbound)
    start = stream.index(on_b[0])
    assert on_b == stream[start:], (start, on_b)
    assert 0 < start <= 100, start  # some went to A before it died, the rest to B

    # A returns: within FAILBACK_S the agent checks it, switches back, and carries on there.
    first.start()
    wait_until(lambda: _connected_to(agent, first), 20, "the agent back on the preferred A")
    on_second.wait_for(availability, lambda m: m.payload == b"offline")  # B's will for us
    on_first.wait_for(availability, lambda m: m.payload == b"online" and not m.retain)
    after = [f"ok: after {i:03d}" for i in range(20)]
    _send_in_order(owner, to, after)
    wait_until(lambda: _seen(on_first, inbound)[-1:] == after[-1:], 20, "the later ones on A")
    on_a = _seen(on_first, inbound)
    # A kept, and now handed over, everything it had acknowledged before it died: with B's
    # share nothing accepted is missing, and each broker's share is in order.
    assert on_a == [b for b in stream + after if b in set(on_a)]
    assert set(stream) <= set(on_a) | set(on_b)
    assert set(after) <= set(on_a)
    wait_until(lambda: _pending(agent.outbox_path) == 0, 10, "the outbox to empty")
    for probe in probes:
        probe.close()


def _pending(db: Path) -> int:
    if not db.exists():
        return -1
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def test_starts_on_the_next_broker_when_the_first_is_down_and_corrects_a_late_will(
    kamailio, mosquitto_factory, agent_factory, device_id
):
    availability = f"sipagent/{device_id}/availability"
    first, second = mosquitto_factory(), mosquitto_factory()
    first.stop()
    agent = agent_factory(_hosts_toml(kamailio, [first, second], device_id))
    agent.wait_ready()
    wait_until(lambda: _connected_to(agent, second), 20, "the agent on B, A being down")

    # A will of an earlier connection arriving late (from a bridged broker, say) must not
    # leave consumers with `offline` while the agent is connected.
    with MqttProbe(second.host, second.port, [availability]) as probe:
        probe.wait_for(availability, lambda m: m.payload == b"online")
        probe.publish(availability, b"offline", retain=True)  # as a will is
        probe.wait_for(availability, lambda m: m.payload == b"online" and not m.retain)
    with MqttProbe(second.host, second.port, [availability]) as fresh:
        fresh.wait_for(availability, lambda m: m.retain and m.payload == b"online")
