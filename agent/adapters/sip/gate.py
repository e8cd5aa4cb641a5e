"""The request gate in pjsip: a module that sees every request before pjsua does.

pjsua2 gives Python no way in before pjsua acts: by the time `onIncomingCall` runs, media
sockets are open; before `onIncomingSubscribe`, a dialog exists and the local address toward
the sender's Contact host has been looked up. So the agent registers a pjsip module of its
own (through ctypes: the binding's shared object exports pjsip's C API) between the
transaction layer and the dialogs, and lets agent.core.gate decide each request: pass, drop, or
answer at once, statelessly.

pjsip hands the module a `pjsip_rx_data`; the few fields read here (the message's bytes,
its length, the source address) sit at offsets that follow from pjsip's headers and the
default PJSIP_MAX_PKT_LEN (4000), the same in 2.15 to 2.17. They are checked at start with a
probe request sent to ourselves: a build laid out otherwise is detected, reported, and runs
without the gate (INVITEs are then still answered 486 by pjsua, without media: maxCalls 0).

Owner thread only: pjsip calls the module from inside `libHandleEvents`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import time
from collections.abc import Callable

import pjsua2 as pj

from agent.core.counters import Counters
from agent.core.gate import Arrival, Verdict
from agent.core.lograte import LogThrottle

log = logging.getLogger(__name__)

MAX_PKT_LEN = 4000  # pjsip's PJSIP_MAX_PKT_LEN, as built into the binding
INET6_ADDRSTRLEN = 46
# Between the transaction layer (16: retransmissions of what passed are absorbed there) and
# the dialog layer (32) and pjsua's modules (64).
PRIORITY = 20
_NEEDED = (
    "pjsua_get_pjsip_endpt",
    "pjsip_endpt_register_module",
    "pjsip_endpt_unregister_module",
    "pjsip_endpt_respond_stateless",
)


class _OpKey(ctypes.Structure):  # pj_ioqueue_op_key_t
    _fields_ = [
        ("internal", ctypes.c_void_p * 32),
        ("activesock_data", ctypes.c_void_p),
        ("user_data", ctypes.c_void_p),
    ]


class _RxOpKey(ctypes.Structure):  # pjsip_rx_data_op_key
    _fields_ = [("op_key", _OpKey), ("rdata", ctypes.c_void_p)]


class _TpInfo(ctypes.Structure):
    _fields_ = [
        ("pool", ctypes.c_void_p),
        ("transport", ctypes.c_void_p),
        ("tp_data", ctypes.c_void_p),
        ("op_key", _RxOpKey),
    ]


class _PktInfo(ctypes.Structure):
    _fields_ = [
        ("timestamp", ctypes.c_long * 2),  # pj_time_val
        ("packet", ctypes.c_char * MAX_PKT_LEN),
        ("zero", ctypes.c_uint32),
        ("len", ctypes.c_ssize_t),
        ("src_addr", ctypes.c_uint32 * 7),  # pj_sockaddr: 28 bytes, 4-aligned
        ("src_addr_len", ctypes.c_int),
        ("src_name", ctypes.c_char * INET6_ADDRSTRLEN),
        ("src_port", ctypes.c_int),
    ]


class _MsgInfo(ctypes.Structure):  # the start of it
    _fields_ = [("msg_buf", ctypes.c_void_p), ("len", ctypes.c_int), ("msg", ctypes.c_void_p)]


class _RxData(ctypes.Structure):  # pjsip_rx_data, as far as it is read
    _fields_ = [("tp_info", _TpInfo), ("pkt_info", _PktInfo), ("msg_info", _MsgInfo)]


_PACKET_OFFSET = _RxData.pkt_info.offset + _PktInfo.packet.offset


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


_OnRx = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _Module(ctypes.Structure):  # pjsip_module
    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("name", _PjStr),
        ("id", ctypes.c_int),
        ("priority", ctypes.c_int),
        ("load", ctypes.c_void_p),
        ("start", ctypes.c_void_p),
        ("stop", ctypes.c_void_p),
        ("unload", ctypes.c_void_p),
        ("on_rx_request", _OnRx),
        ("on_rx_response", ctypes.c_void_p),
        ("on_tx_request", ctypes.c_void_p),
        ("on_tx_response", ctypes.c_void_p),
        ("on_tsx_state", ctypes.c_void_p),
    ]


class GateUnavailable(Exception):
    """This pjsua2 build cannot carry the gate (missing symbols, another layout)."""


Decide = Callable[[Arrival], Verdict]


class RequestGate:
    """The pjsip module; `decide` (agent.core.gate.GatePolicy.decide) judges each request."""

    def __init__(self, decide: Decide, counters: Counters) -> None:
        self._decide = decide
        self._counters = counters
        self._lib: ctypes.CDLL | None = None
        self._endpt: int | None = None
        self._module: _Module | None = None
        self._callback: object = None  # referenced for as long as pjsip may call it
        self._name = b"mod-sipagent-gate"
        self._probe: bytes | None = None
        self.active = False  # calibrated: the layout is what this module reads
        self._quiet = LogThrottle(log)

    def install(self) -> None:
        """Register the module with pjsip (after libInit); raise GateUnavailable."""
        try:
            lib = ctypes.CDLL(pj._pjsua2.__file__)
        except (OSError, AttributeError) as err:
            raise GateUnavailable(f"cannot load the binding's library: {err}") from None
        missing = [name for name in _NEEDED if not hasattr(lib, name)]
        if missing:
            raise GateUnavailable(f"the binding does not export {', '.join(missing)}")
        try:
            # libffi makes a small executable trampoline for the callback; a sandbox that
            # forbids writable-executable memory everywhere would refuse it.
            self._callback = _OnRx(self._on_rx_request)
        except (MemoryError, OSError) as err:
            raise GateUnavailable(f"cannot make the callback for pjsip: {err}") from None
        lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
        lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.pjsip_endpt_unregister_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.pjsip_endpt_respond_stateless.argtypes = (
            [ctypes.c_void_p] * 2 + [ctypes.c_int] + [ctypes.c_void_p] * 3
        )
        self._lib = lib
        self._endpt = lib.pjsua_get_pjsip_endpt()
        module = _Module(
            name=_PjStr(self._name, len(self._name)),
            id=-1,
            priority=PRIORITY,
            on_rx_request=self._callback,
        )
        status = lib.pjsip_endpt_register_module(self._endpt, ctypes.byref(module))
        if status != 0:
            raise GateUnavailable(f"pjsip refused the module (status {status})")
        self._module = module

    def calibrate(self, address: tuple[str, int], poll: Callable[[int], None]) -> None:
        """Send a probe to our own UDP transport at `address`; check what pjsip hands us."""
        token = os.urandom(8).hex()  # not `secrets`: it loads hmac and libcrypto (agent.lean)
        host, port = address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            here = sock.getsockname()[1]
            probe = (
                f"OPTIONS sip:gate-probe@{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{here};branch=z9hG4bK{token}\r\n"
                f"From: <sip:gate-probe@{host}>;tag={token}\r\nTo: <sip:gate-probe@{host}>\r\n"
                f"Call-ID: gate-probe-{token}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            self._probe = probe
            self._probe_from = (host, here)
            sock.sendto(probe, address)
            deadline = time.monotonic() + 2.0
            while self._probe is not None and time.monotonic() < deadline:
                poll(10)
        if not self.active:
            raise GateUnavailable(
                "pjsip's request data is laid out otherwise in this build "
                f"(PJSIP_MAX_PKT_LEN {MAX_PKT_LEN} assumed)"
            )

    def close(self) -> None:
        """Unregister (before libDestroy); the callback object stays alive with `self`."""
        if self._lib is not None and self._module is not None and self._endpt:
            self._lib.pjsip_endpt_unregister_module(self._endpt, ctypes.byref(self._module))
        self.active = False

    # -- pjsip calls this ------------------------------------------------------------------

    def _on_rx_request(self, rdata: int) -> int:
        try:
            if self._probe is not None:
                return self._check_probe(rdata)
            if not self.active:
                return 0
            data = _RxData.from_address(rdata)
            raw = ctypes.string_at(data.msg_info.msg_buf, data.msg_info.len)
            method = raw[: raw.find(b" ", 0, 32)].decode("ascii", "replace").upper()
            source = data.pkt_info.src_name.decode("ascii", "replace")
            transport = data.tp_info.transport or 0
            arrival = Arrival(method, source, data.pkt_info.src_port, raw, transport)
            verdict = self._decide(arrival)
            if verdict.action == "pass":
                return 0
            if verdict.action == "answer":
                self._answer(rdata, verdict)
            return 1
        except Exception:
            # Fail closed: a request the gate could not judge goes no further.
            self._counters.bump("sip.callback.gate.failed")
            self._quiet.warning("gate", "request gate failed; request dropped", exc_info=True)
            return 1

    def _answer(self, rdata: int, verdict: Verdict) -> None:
        assert self._lib is not None
        reason = verdict.reason.encode("ascii", "replace")[:120]
        text = _PjStr(reason, len(reason)) if reason else None
        self._lib.pjsip_endpt_respond_stateless(
            self._endpt, rdata, verdict.code, ctypes.byref(text) if text else None, None, None
        )

    def _check_probe(self, rdata: int) -> int:
        """The first request after install must be our probe; verify every field we read."""
        probe = self._probe
        assert probe is not None
        packet = ctypes.string_at(rdata + _PACKET_OFFSET, len(probe))
        if packet != probe:
            return 0  # not ours (someone else's early request): pjsua may have it
        self._probe = None
        data = _RxData.from_address(rdata)
        host, port = self._probe_from
        self.active = (
            data.pkt_info.len == len(probe)
            and data.msg_info.msg_buf == rdata + _PACKET_OFFSET
            and data.msg_info.len == len(probe)
            and data.pkt_info.src_name.decode("ascii", "replace") == host
            and data.pkt_info.src_port == port
        )
        return 1  # the probe itself is never answered
