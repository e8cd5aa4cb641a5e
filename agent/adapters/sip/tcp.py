"""TCP and TLS connections to the agent: bounded, closed when idle, kept out in a flood.

The decisions are agent.core.connections'; this adapter feeds it from pjsua2's transport
callbacks, closes what it says to close (the SIP stack's pjsip_transport_shutdown), and keeps
the kernel filter on the listening socket (agent.adapters.sip.bpf) in step: in routed mode
only the proxy's addresses may connect; while the breaker is tripped nobody else may.

pjsua2 tells the transport's handle only; its direction and remote address are read from
pjsip's `pjsip_transport` (the leading fields, laid out as below on 32 and 64 bits alike;
2.16 added `has_addr_name` before `local_name`, pjproject#4411) and checked for sense
before use: a layout that does not read right is said in the log, never guessed. Owner
thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from agent.adapters.sip import bpf
from agent.config.model import SipConfig
from agent.core.connections import Connections
from agent.core.counters import Counters
from agent.core.lograte import LogThrottle
from agent.core.trust import Trust

log = logging.getLogger(__name__)

_OUTGOING, _INCOMING = 1, 2  # pjsip_transport_dir


class _HostPort(ctypes.Structure):
    _fields_ = [("host", ctypes.c_void_p), ("slen", ctypes.c_ssize_t), ("port", ctypes.c_int)]


_LEADING: list[tuple[str, type]] = [  # pjsip_transport up to its local address
    ("obj_name", ctypes.c_char * 32),
    ("pool", ctypes.c_void_p),
    ("ref_cnt", ctypes.c_void_p),
    ("lock", ctypes.c_void_p),
    ("grp_lock", ctypes.c_void_p),
    ("tracing", ctypes.c_int),
    ("is_shutdown", ctypes.c_int),
    ("is_destroying", ctypes.c_int),
    ("key_type", ctypes.c_long),
    ("rem_addr", ctypes.c_uint32 * 7),
    ("type_name", ctypes.c_void_p),
    ("flag", ctypes.c_uint),
    ("info", ctypes.c_void_p),
    ("addr_len", ctypes.c_int),
    ("local_addr", ctypes.c_uint32 * 7),
]
_NAMES_AND_DIR: list[tuple[str, type]] = [
    ("local_name", _HostPort),
    ("remote_name", _HostPort),
    ("dir", ctypes.c_int),
]


class _Transport215(ctypes.Structure):  # pjproject 2.15 and older
    _fields_ = [*_LEADING, *_NAMES_AND_DIR]


class _Transport216(ctypes.Structure):  # pjproject 2.16 and newer
    _fields_ = [*_LEADING, ("has_addr_name", ctypes.c_int), *_NAMES_AND_DIR]


def transport_layout(version: tuple[int, ...]) -> type[ctypes.Structure]:
    """pjsip_transport's leading fields in pjproject `version` ((2, 17))."""
    return _Transport216 if version >= (2, 16) else _Transport215


# The running pjproject's layout and version, read once (the endpoint runs by then).
_running: tuple[type[ctypes.Structure], str] | None = None


def _running_layout() -> tuple[type[ctypes.Structure], str]:
    global _running
    if _running is None:
        version = pj.Endpoint.instance().libVersion()
        _running = (transport_layout((version.major, version.minor)), version.full)
    return _running


def transport_peer(
    handle: int, layout: type[ctypes.Structure] | None = None
) -> tuple[bool, str] | None:
    """(incoming, remote address) of a TCP/TLS transport, or None if it does not read right
    (`layout`: the running pjproject's)."""
    tp: Any = (layout or _running_layout()[0]).from_address(handle)
    if not tp.obj_name.startswith((b"tcp", b"tls")) or tp.dir not in (_OUTGOING, _INCOMING):
        return None
    raw = bytes(tp.rem_addr)
    family = int.from_bytes(raw[:2], "little")
    if family == socket.AF_INET:
        address = str(ipaddress.IPv4Address(raw[4:8]))
    elif family == socket.AF_INET6:
        address = str(ipaddress.IPv6Address(raw[8:24]))
    else:
        return None
    return tp.dir == _INCOMING, address


class TcpGuard:
    def __init__(self, config: SipConfig, counters: Counters, trust: Trust, only_proxy: bool):
        """`config`: the account on TCP or TLS whose listener this guards."""
        limits = config.limits
        self.connections = Connections(limits.tcp_connections_per_ip, limits.tcp_idle_s)
        self._counters = counters
        self._trust = trust
        self._only_proxy = only_proxy
        self._handles: dict[int, object] = {}  # pointer -> pjsua2's handle, to shut it down
        self._close: dict[int, str] = {}  # pointer -> why, closed after the poll
        self._listeners: list[socket.socket] = []  # one per family ("[::]": two)
        self._attached: tuple[str, ...] | bool | None = False  # False: nothing decided yet
        self._quiet = LogThrottle(log)

    def start(self, port: int) -> None:
        """Find pjsip's listening socket on `port` and put the first filter on it."""
        self._listeners = _listening_sockets(port)
        if not self._listeners:
            log.error("TCP listener on port %d not found: connections are not filtered", port)
        self.refresh()

    def on_state(self, prm: pj.OnTransportStateParam) -> bool:
        """Count the change; True for a connection someone else opened to us."""
        handle = int(prm.hnd)
        peer = transport_peer(handle)
        incoming = peer is not None and peer[0]
        if prm.state == pj.PJSIP_TP_STATE_CONNECTED:
            if peer is None:
                # Not a TCP/TLS transport as this pjproject lays it out: unguarded, so say so.
                self._counters.bump("sip.tcp.unreadable")
                self._quiet.warning(
                    "tcp-layout",
                    "a TCP/TLS connection pjsip reports does not read as pjproject %s lays "
                    "it out: connections are not limited per address",
                    _running_layout()[1],
                )
                return False
            address = peer[1]
            self._handles[handle] = prm.hnd
            trusted = self._trust.contains(address)
            if not self.connections.opened(handle, address, incoming=incoming, trusted=trusted):
                self._counters.bump("sip.tcp.per_ip.closed")
                self._close[handle] = f"more than {self.connections.per_ip} from {address}"
        elif prm.state == pj.PJSIP_TP_STATE_DESTROY:
            self._handles.pop(handle, None)
            self._close.pop(handle, None)
            self.connections.closed(handle)
        self.refresh()
        return incoming

    def saw_request(self, transport: int) -> None:
        self.connections.request(transport)

    def after_poll(self, shutdown: Callable[[object], None]) -> None:
        for handle in self.connections.idle():
            if handle not in self._close:
                self._counters.bump("sip.tcp.idle.closed")
                self._close[handle] = "idle"
        for handle, why in list(self._close.items()):
            hnd = self._handles.get(handle)
            del self._close[handle]
            if hnd is None:
                continue
            self._quiet.warning("close", "closing an incoming SIP connection: %s", why)
            with contextlib.suppress(pj.Error):
                shutdown(hnd)
            self.connections.closed(handle)  # its DESTROY may come later: counted once
            self._handles.pop(handle, None)
        self.refresh()

    def refresh(self) -> None:
        """Put the filter the moment calls for on the listener, if it changed."""
        if not self._listeners:
            return
        tripped = self.connections.breaker()
        if self._only_proxy:
            wanted: tuple[str, ...] | None = tuple(sorted(str(n) for n in self._trust.networks()))
        else:
            wanted = () if tripped else None
        if wanted == self._attached:
            return
        if tripped and self._attached is None:
            self._counters.bump("sip.tcp.breaker.tripped")
            self._quiet.warning("breaker", "too many SIP connections: new ones kept out for now")
        try:
            for listener in self._listeners:
                bpf.attach(
                    listener,
                    None if wanted is None else [ipaddress.ip_network(n) for n in wanted],
                )
        except OSError as err:
            # Seen inside systemd-nspawn, whose seccomp filter refuses SO_ATTACH_FILTER.
            self._counters.bump("sip.tcp.filter.failed")
            log.error(
                "cannot filter connections to the SIP listener (%s): the kernel does not keep "
                "strangers' connections out; a flood of connections may exhaust pjsip's slots",
                err,
            )
            self.close()
            return
        self._attached = wanted

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()  # our duplicate only: pjsip's descriptor stays open
        self._listeners = []


def _listening_sockets(port: int) -> list[socket.socket]:
    """Duplicates of this process's listening TCP sockets on `port` (IPv4, IPv6; filters
    apply to the originals too)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            if (
                sock.type == socket.SOCK_STREAM
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                and sock.getsockname()[1] == port
            ):
                found.append(sock)
                continue
        except OSError:
            pass
        sock.close()
    return found
