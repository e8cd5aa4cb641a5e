"""SRV lookups through pjsip's own DNS resolver (the one `UaConfig.nameserver` configures).

pjsip resolves a domain's SRV records itself when it sends, but it tells nobody what it
found, and it does not move to the next target when one stops answering (docs/pjsip.md).
The agent asks the same resolver, through ctypes (the binding's shared object exports
pjlib-util's C API), for the targets themselves: `pj_dns_srv_resolve` answers with every
target's name, port, priority, weight and addresses. The lookup is asynchronous: it runs on
pjsip's ioqueue, and the answer comes back inside `libHandleEvents` on the owner thread.
Answers come from pjsip's cache while their TTL lasts (pjsip caps it at 5 minutes), so
asking again is free until the records expire, and then asks the server.

The record layout below is pjlib-util's (2.15 to 2.17: `pj_dns_srv_record`,
`pj_dns_addr_record`); every answer is checked for sense before it is believed.

Owner thread only.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import socket
from collections.abc import Callable

import pjsua2 as pj

from agent.core.srv import SrvTarget

log = logging.getLogger(__name__)

_MAX_TARGETS = 8  # PJ_DNS_SRV_MAX_ADDR
_MAX_ADDRESSES = 8  # PJ_DNS_MAX_IP_IN_A_REC
_FALLBACK_A, _FALLBACK_AAAA, _RESOLVE_AAAA = 1, 2, 4
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
_SERVICES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("slen", ctypes.c_ssize_t)]

    def text(self) -> str:
        if not self.ptr or not 0 < self.slen <= 255:
            return ""
        return ctypes.string_at(self.ptr, self.slen).decode("ascii", "replace")


class _Ip(ctypes.Union):
    _fields_ = [("v4", ctypes.c_uint8 * 4), ("v6", ctypes.c_uint8 * 16)]


class _Addr(ctypes.Structure):
    _fields_ = [("af", ctypes.c_int), ("ip", _Ip)]


class _AddrRecord(ctypes.Structure):  # pj_dns_addr_record
    _fields_ = [
        ("name", _PjStr),
        ("alias", _PjStr),
        ("addr_count", ctypes.c_uint),
        ("addr", _Addr * _MAX_ADDRESSES),
        ("buf_", ctypes.c_char * 128),
    ]


class _Entry(ctypes.Structure):
    _fields_ = [
        ("priority", ctypes.c_uint),
        ("weight", ctypes.c_uint),
        ("port", ctypes.c_uint16),
        ("server", _AddrRecord),
    ]


class _SrvRecord(ctypes.Structure):  # pj_dns_srv_record
    _fields_ = [("count", ctypes.c_uint), ("entry", _Entry * _MAX_TARGETS)]


_Callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_SrvRecord))


class DnsUnavailable(Exception):
    """pjsip has no DNS resolver (no nameserver configured) or lacks the functions."""


class UnreadableAnswer(ValueError):
    """An answer that does not read as SRV targets (another pjsip layout?)."""


Done = Callable[[list[SrvTarget] | None, str], None]


def targets_of(record: _SrvRecord) -> list[SrvTarget]:
    """The targets in pjsip's answer, checked for sense."""
    if record.count > _MAX_TARGETS:
        raise UnreadableAnswer(f"{record.count} targets")
    targets = []
    for i in range(record.count):
        entry = record.entry[i]
        server = entry.server
        name = server.name.text().rstrip(".").lower()
        if not name or not entry.port or server.addr_count > _MAX_ADDRESSES:
            raise UnreadableAnswer(f"target {i}: {name!r} port {entry.port}")
        addresses = []
        for a in server.addr[: server.addr_count]:
            if a.af == _AF_INET:
                addresses.append(str(ipaddress.IPv4Address(bytes(a.ip.v4))))
            elif a.af == _AF_INET6:
                addresses.append(str(ipaddress.IPv6Address(bytes(a.ip.v6))))
            else:
                raise UnreadableAnswer(f"address family {a.af}")
        targets.append(SrvTarget(name, entry.port, entry.priority, entry.weight, tuple(addresses)))
    return targets


class SrvLookup:
    """One lookup at a time of a domain's SIP targets for a transport."""

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self._resolver: int | None = None
        self._pool: int | None = None
        self._query = ctypes.c_void_p()
        self._done: Done | None = None
        self._callback = _Callback(self._answered)  # kept: pjsip holds the pointer
        self._stale_pools: list[int] = []

    def start(self) -> None:
        """After libStart: find pjsip's resolver; DnsUnavailable if there is none."""
        try:
            lib = ctypes.CDLL(pj._pjsua2.__file__)
            for name in ("pjsua_get_pjsip_endpt", "pjsip_endpt_get_resolver", "pjsua_pool_create"):
                getattr(lib, name).restype = ctypes.c_void_p
            lib.pjsip_endpt_get_resolver.argtypes = [ctypes.c_void_p]  # the pj_dns_resolver
            lib.pjsua_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
            lib.pj_pool_release.argtypes = [ctypes.c_void_p]
            lib.pj_dns_srv_cancel_query.argtypes = [ctypes.c_void_p, ctypes.c_int]
            lib.pj_dns_srv_resolve.argtypes = [
                ctypes.POINTER(_PjStr), ctypes.POINTER(_PjStr), ctypes.c_uint, ctypes.c_void_p,
                ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, _Callback,
                ctypes.POINTER(ctypes.c_void_p),
            ]  # fmt: skip
        except (OSError, AttributeError) as err:
            raise DnsUnavailable(f"this pjsua2 build lacks pjsip's resolver API: {err}") from err
        endpt = lib.pjsua_get_pjsip_endpt()
        resolver = lib.pjsip_endpt_get_resolver(endpt) if endpt else None
        if not resolver:
            raise DnsUnavailable("pjsip has no DNS resolver (no nameserver configured)")
        self._lib, self._resolver = lib, resolver

    @property
    def busy(self) -> bool:
        return self._done is not None

    def lookup(self, domain: str, transport: str, done: Done) -> None:
        """Ask for `domain`'s targets; `done(targets, "")` or `done(None, why)` follows,
        maybe at once (from pjsip's cache), else from inside a later poll."""
        assert self._lib is not None and self._resolver is not None
        self.cancel()
        lib = self._lib
        self._release_stale()
        pool = lib.pjsua_pool_create(b"srv", 4000, 4000)
        if not pool:
            done(None, "out of memory for a DNS query")
            return
        self._pool, self._done = pool, done
        name = domain.encode("ascii")
        service = _SERVICES[transport].encode()
        # pjsip copies both into the pool; the buffers need only outlive the call.
        name_buf, service_buf = (
            ctypes.create_string_buffer(name),
            ctypes.create_string_buffer(service),
        )
        name_str = _PjStr(ctypes.addressof(name_buf), len(name))
        service_str = _PjStr(ctypes.addressof(service_buf), len(service))
        self._query = ctypes.c_void_p()
        status = lib.pj_dns_srv_resolve(
            ctypes.byref(name_str), ctypes.byref(service_str), DEFAULT_PORTS[transport], pool,
            self._resolver, _FALLBACK_A | _FALLBACK_AAAA | _RESOLVE_AAAA, None, self._callback,
            ctypes.byref(self._query),
        )  # fmt: skip
        if status != 0 and self._done is not None:
            self._finish(None, _strerror(status))

    def cancel(self) -> None:
        """Drop a running lookup (its callback never comes)."""
        if self._done is None:
            return
        if self._query and self._lib is not None:
            self._lib.pj_dns_srv_cancel_query(self._query, 0)
        self._done = None
        self._retire_pool()

    def close(self) -> None:
        """Before libDestroy: the pools belong to pjsua."""
        self.cancel()
        self._release_stale()

    def _answered(self, _token: int, status: int, record: ctypes._Pointer) -> None:
        try:
            if status != 0:
                self._finish(None, _strerror(status))
            elif not record:
                self._finish(None, "empty answer")
            else:
                self._finish(targets_of(record.contents), "")
        except UnreadableAnswer as err:
            self._finish(None, f"DNS answer unreadable ({err}): another pjsip build?")
        except Exception:  # nothing may escape into pjsip's C stack
            log.exception("SRV answer handling failed")

    def _finish(self, targets: list[SrvTarget] | None, why: str) -> None:
        done, self._done = self._done, None
        self._query = ctypes.c_void_p()
        # pjsip may still touch the query in its pool after the callback: release it later.
        self._retire_pool()
        if done is not None:
            done(targets, why)

    def _retire_pool(self) -> None:
        if self._pool is not None:
            self._stale_pools.append(self._pool)
            self._pool = None

    def _release_stale(self) -> None:
        if self._lib is not None:
            for pool in self._stale_pools:
                self._lib.pj_pool_release(pool)
        self._stale_pools.clear()


def _strerror(status: int) -> str:
    try:
        return pj.Endpoint.instance().utilStrError(status)
    except pj.Error:
        return f"error {status}"
