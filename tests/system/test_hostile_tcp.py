"""Hostile TCP: connections held open and silent, or opened and closed faster than pjsip frees
their slots (which made pjlib assert and the agent abort on 2.15.1)."""

from __future__ import annotations

import select
import socket
import time

from lab.hostile import Target, token
from lab.rawsip import TcpPeer, request
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
    made: list[socket.socket] = []
    deadline = time.monotonic() + within
    while pending and (left := deadline - time.monotonic()) > 0:
        _, writable, _ = select.select([], pending, [], left)
        for sock in writable:
            pending.remove(sock)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                made.append(sock)
            else:
                sock.close()
    for sock in pending:  # kept out: their SYNs were dropped
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
    held = []
    for i in range(58):  # one connection from each of 58 addresses, each seen working
        try:
            conn = TcpPeer(target.address, host=f"127.0.1.{i + 1}", timeout=2.0)
        except OSError:
            break  # kept out: the breaker tripped
        conn.send(request("MESSAGE", target.uri, local=conn.address, proto="TCP",
                          body=token(), content_type="text/plain"))  # fmt: skip
        answered = conn.read_response(timeout=5.0)
        conn.close() if answered is None else held.append(conn)
        if answered is None:
            break
    assert 30 <= len(held) < 58, f"{len(held)} connections taken"
    assert "too many SIP connections" in target.agent.log.read_text()
    for conn in held:  # all closed at once: their slots are held for half a second more...
        conn.close()
    hosts = [f"127.0.1.{i + 1}" for i in range(58)]
    for sock in _connect_all(target.address, hosts, within=2.0):  # ...when these come
        sock.close()
    target.sound.check()  # alive; the owner connects again once the flood is over
