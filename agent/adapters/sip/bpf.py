"""Socket filters for the SIP listener: which source addresses may open a connection.

A classic BPF program attached to a listening TCP socket (SO_ATTACH_FILTER) runs on every
SYN in the kernel, before pjsip accepts anything: a connection it drops never takes one of
pjsip's ioqueue slots. No privilege is needed for one's own socket. The program reads the
source address from the IP header (SKF_NET_OFF) and accepts the listed networks; every
other packet is dropped. The empty list drops everything.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
_NET = 0xFFF00000  # SKF_NET_OFF (-0x100000): offsets from the network header
_LD_W, _LD_B = 0x20, 0x30  # BPF_LD | BPF_W / BPF_B | BPF_ABS
_AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_ACCEPT, _DROP = 0xFFFFFFFF, 0
_END = -3  # marks the end of one network's checks (resolved by _link)
MAX_NETWORKS = 16  # jump offsets are one byte: keep programs short


def program(allowed: Iterable[Network]) -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) instructions accepting packets from `allowed`, dropping the rest."""
    networks = list(allowed)[:MAX_NETWORKS]
    v4 = [n for n in networks if n.version == 4]
    v6 = [n for n in networks if n.version == 6]
    v4_code = _checks(v4, 12, 1)
    v6_code = _checks(v6, 8, 4)
    code: list[tuple[int, int, int, int]] = [
        (_LD_B, 0, 0, _NET + 0),
        (_AND, 0, 0, 0xF0),
        # IPv4: fall into its checks; anything else jumps over them to the IPv6 checks (the
        # end-of-network markers in v4_code are no instructions: they do not count).
        (_JEQ, 0, len([c for c in v4_code if c[0] != _END]) + 1, 0x40),
        *v4_code,
        (_RET, 0, 0, _DROP),
        *v6_code,
        (_RET, 0, 0, _DROP),
        (_RET, 0, 0, _ACCEPT),
    ]
    return _link(code)


def _checks(
    networks: Sequence[Network], offset: int, words: int
) -> list[tuple[int, int, int, int]]:
    """For each network: load each word of the source, mask, compare; all equal: accept.

    Jumps are written as markers, resolved by _link: "next" is the next network's checks,
    "accept" the final accepting return.
    """
    code: list[tuple[int, int, int, int]] = []
    for net in networks:
        if net.prefixlen == 0:
            code.append((_RET, 0, 0, _ACCEPT))  # everyone of this family
            code.append((-3, 0, 0, 0))
            continue
        raw = net.network_address.packed
        mask = net.netmask.packed
        for w in range(words):
            m = struct.unpack("!I", mask[4 * w : 4 * w + 4])[0]
            if m == 0:
                break
            v = struct.unpack("!I", raw[4 * w : 4 * w + 4])[0]
            last = w == words - 1 or struct.unpack("!I", mask[4 * w + 4 : 4 * w + 8])[0] == 0
            code.append((_LD_W, 0, 0, _NET + offset + 4 * w))
            code.append((_AND, 0, 0, m))
            code.append((_JEQ, -1 if last else 0, -2, v))  # -1: accept; -2: next network
        code.append((-3, 0, 0, 0))  # marks the end of this network's checks
    return code


def _link(code: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Resolve the markers of _checks into relative jumps; drop the end-of-network marks."""
    accept = len([c for c in code if c[0] != -3]) - 1
    out: list[tuple[int, int, int, int]] = []
    ends: list[int] = []  # index (in `out`) where each network's checks end
    for c in code:
        if c[0] == -3:
            ends.append(len(out))
        else:
            out.append(c)
    linked = []
    for i, (op, jt, jf, k) in enumerate(out):
        if op == _JEQ and (jt < 0 or jf < 0):
            nxt = next(e for e in ends if e > i)
            jt = accept - i - 1 if jt == -1 else jt
            jf = nxt - i - 1 if jf == -2 else jf
        linked.append((op, jt, jf, k))
    return linked


def attach(sock: socket.socket, allowed: Iterable[Network] | None) -> None:
    """Filter `sock` to `allowed` sources; None removes the filter (everyone may connect)."""
    if allowed is None:
        with contextlib.suppress(OSError):  # no filter was attached
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        return
    code = program(allowed)
    buffer = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *c) for c in code))
    fprog = struct.pack("HL", len(code), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
