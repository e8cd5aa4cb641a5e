"""Reading pjsip's transports (agent.adapters.sip.tcp): the layout of the pjproject running.

pjproject 2.16 added a field to `pjsip_transport` before the remote name and the direction
(pjproject#4411); read with 2.15's layout, a 2.17 connection looked like no TCP connection at
all and the per-address limit and idle close silently did nothing. The end-to-end proof is
tests/system/test_hostile_tcp.py on each binding; here, each layout against a transport
written as that pjproject lays it out.
"""

from __future__ import annotations

import ctypes
import socket
from types import SimpleNamespace

import pjsua2 as pj
import pytest

from agent.adapters.sip import tcp
from agent.adapters.sip.tcp import TcpGuard, transport_layout, transport_peer
from agent.config.load import parse_config
from agent.core.counters import Counters
from agent.core.trust import Trust

INCOMING = 2


def transport(version: tuple[int, int], address: str, direction: int) -> ctypes.Structure:
    """A `pjsip_transport` of `version` for a TCP connection from `address`."""
    tp = transport_layout(version)()
    tp.obj_name = b"tcps0x1234"
    raw = bytearray(28)
    raw[0:2] = socket.AF_INET.to_bytes(2, "little")
    raw[4:8] = socket.inet_aton(address)
    ctypes.memmove(ctypes.addressof(tp.rem_addr), bytes(raw), len(raw))
    tp.dir = direction
    return tp


@pytest.mark.parametrize("version", [(2, 15), (2, 16), (2, 17)])
def test_each_version_is_read_with_its_own_layout(version: tuple[int, int]) -> None:
    tp = transport(version, "127.0.4.1", INCOMING)
    layout = transport_layout(version)
    assert transport_peer(ctypes.addressof(tp), layout) == (True, "127.0.4.1")


def test_the_layouts_differ_where_pjproject_2_16_added_a_field() -> None:
    old, new = transport_layout((2, 15)), transport_layout((2, 16))
    assert new.dir.offset > old.dir.offset  # type: ignore[attr-defined]
    # A 2.17 connection read as 2.15 lays it out is not taken for a connection at all.
    tp = transport((2, 17), "127.0.4.1", INCOMING)
    assert transport_peer(ctypes.addressof(tp), old) is None


def test_a_connection_that_does_not_read_right_is_counted_and_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tcp, "_running", (transport_layout((2, 17)), "2.17"))
    config = parse_config(
        '[device]\nid = "t"\n[sip]\nuri = "sip:t@127.0.0.1"\ntransport = "tcp"\n'
    ).sip
    counters = Counters()
    guard = TcpGuard(config, counters, Trust(()), only_proxy=False)
    blank = ctypes.create_string_buffer(512)  # no "tcp" name: not a transport as we know it
    prm = SimpleNamespace(hnd=ctypes.addressof(blank), state=pj.PJSIP_TP_STATE_CONNECTED)
    assert guard.on_state(prm) is False  # type: ignore[arg-type]
    assert counters.get("sip.tcp.unreadable") == 1
    assert "does not read as pjproject 2.17 lays it out" in caplog.text
    # Read right, the same guard counts the connection.
    tp = transport((2, 17), "127.0.4.1", INCOMING)
    prm = SimpleNamespace(hnd=ctypes.addressof(tp), state=pj.PJSIP_TP_STATE_CONNECTED)
    assert guard.on_state(prm) is True  # type: ignore[arg-type]
    assert guard.connections.slots() == 1
