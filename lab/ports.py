"""Free loopback ports for the lab's servers."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_LOCK = threading.Lock()
# Ports handed out by this process: the kernel may report a port free again as soon as a
# server stops (e.g. during a restart), so never hand the same one out twice.
_GIVEN: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _candidate_range() -> range:
    # Pick below the ephemeral range: pjsua peers bind port 0 and every outgoing TCP connection
    # takes an ephemeral port, so a server port chosen from that range could be taken by one of
    # them while the server restarts.
    low, _high = _ephemeral_range()
    if low > 12000:
        return range(10000, low - 1)
    return range(61000, 65000)


def _bindable(port: int, kinds: tuple[int, ...]) -> bool:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # A server restarted on this port sets SO_REUSEADDR too: a TIME_WAIT left by
                # an earlier user of the port does not make it unusable.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(kind: str = "udp+tcp") -> int:
    """Return a 127.0.0.1 port that is free for ``kind`` ("udp", "tcp" or "udp+tcp")."""
    kinds = {
        "udp": (socket.SOCK_DGRAM,),
        "tcp": (socket.SOCK_STREAM,),
        "udp+tcp": (socket.SOCK_DGRAM, socket.SOCK_STREAM),
    }.get(kind)
    if kinds is None:
        raise ValueError(f"kind must be udp, tcp or udp+tcp, not {kind!r}")
    candidates = _candidate_range()
    rng = random.SystemRandom()
    with _LOCK:
        for _ in range(500):
            port = rng.choice(candidates)
            if port not in _GIVEN and _bindable(port, kinds):
                _GIVEN.add(port)
                return port
    raise AssertionError(f"no free {kind} port on 127.0.0.1 after 500 tries")
