"""Hostile TCP: connections held open and silent, or opened and closed faster than pjsip frees
their slots (which made pjlib assert and the agent abort on 2.15.1)."""

from __future__ import annotations

import select
import socket

from lab.hostile import Target
from lab.rawsip import TcpPeer
from lab.waiting import wait_until


def _connect_all(address: tuple[str, int], hosts: list[str], within: float) -> list[socket.socket]:
    """Connect from each of `hosts` at once; the connections made within `within` seconds."""
    pending = []
    for host in hosts:
        sock = socket.socket()
        sock.bind((host, 0))
        sock.setblocking(False)
        sock.connect_ex(address)
        pending.append(sock)
    _, writable, _ = select.select([], pending, [], within)
    made = [s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]
    for sock in pending:
        if sock not in made:
            sock.close()
    return made


def test_silent_connections_are_capped_per_address_and_closed_when_idle(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(
        agent_factory, probe_factory, mosquitto, device_id, transport="tcp",
        limits="tcp_idle_s = 2\ntcp_connections_per_ip = 4",
    )  # fmt: skip
    target.sound.begin()
    held = [TcpPeer(target.address, host="127.0.4.1") for _ in range(12)]
    for conn in held:  # the start of a request, and never the rest (slowloris)
        conn.send(b"MESSAGE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n")
    target.sound.check()  # the owner gets through meanwhile
    wait_until(lambda: all(c.closed_by_peer(0.05) for c in held), 15, "all 12 closed")
    target.sound.check()


def test_connection_churn_from_many_addresses_trips_the_breaker_not_the_agent(
    agent_factory, probe_factory, mosquitto, device_id
):
    target = Target.start(agent_factory, probe_factory, mosquitto, device_id, transport="tcp")
    target.sound.begin()
    kept_out = 0
    for _round in range(4):  # open 58 connections from 58 addresses, drop them, again
        hosts = [f"127.0.1.{i + 1}" for i in range(58)]
        made = _connect_all(target.address, hosts, within=1.0)
        kept_out += len(hosts) - len(made)
        for sock in made:
            sock.close()
    assert kept_out > 0, "the breaker never kept a connection out"
    assert "too many SIP connections" in target.agent.log.read_text()
    target.sound.check()  # alive; the owner connects again once the flood is over
