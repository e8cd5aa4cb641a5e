"""Reading mqtt.hosts: the brokers to use, in order (agent.core.brokers has the policy)."""

from __future__ import annotations

from agent.config.model import Broker
from agent.config.table import Table, is_host, split_host_port


def read_brokers(t: Table, host: str | None, port: int) -> tuple[Broker, ...]:
    """mqtt.hosts (each "host" or "host:port", port defaulting to mqtt.port), or mqtt.host."""
    entries = t.texts("hosts")
    if "hosts" not in t.raw:
        return (Broker(host, port),) if host else ()
    if host is not None:
        t.problem("hosts", "set either mqtt.host or mqtt.hosts, not both")
    if not entries and isinstance(t.raw["hosts"], list):
        t.problem("hosts", "must list at least one broker")
    brokers: list[Broker] = []
    for path, entry in entries:
        broker = _broker(entry, port)
        if isinstance(broker, str):
            t.problems.append(f"{path}: {broker}")
        elif broker in brokers:
            t.problems.append(f"{path}: {entry!r} is listed twice")
        else:
            brokers.append(broker)
    return tuple(brokers)


def _broker(entry: str, default_port: int) -> Broker | str:
    """The broker of one mqtt.hosts entry, or what is wrong with it."""
    if is_host(entry):  # a bare IPv6 address has colons but no port
        return Broker(entry, default_port)
    bad = f"{entry!r} is not a broker: host or host:port, port 1..65535 ([v6]:port for IPv6)"
    try:
        host, port = split_host_port(entry)
    except ValueError:
        return bad
    if port == 0:
        return bad
    return Broker(host, port)
