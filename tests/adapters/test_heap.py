"""When the owner loop gives heap memory back: once, after traffic, after a quiet period."""

from __future__ import annotations

from agent.adapters.heap import QUIET_S, HeapTrimmer, _libc_trim


def test_trims_once_after_traffic_has_been_quiet_long_enough() -> None:
    trims: list[int] = []
    heap = HeapTrimmer(trim=lambda: trims.append(1), quiet_s=40)
    heap.seen(0, now=0)
    assert heap.due(now=100) is False  # no traffic yet: nothing to give back
    heap.seen(500, now=100)
    assert heap.due(now=139) is False  # transactions of the burst still alive
    heap.seen(900, now=139)  # more traffic restarts the quiet period
    assert heap.due(now=170) is False
    assert heap.due(now=179) is True
    assert heap.due(now=300) is False  # once per burst
    assert trims == [1]


def test_quiet_period_outlasts_pjsips_timer_j() -> None:
    assert QUIET_S > 32  # 64 * T1 over UDP


def test_glibc_trim_is_found_here() -> None:
    # The agent runs on Debian/Raspberry Pi OS (glibc); elsewhere trimming is simply off.
    trim = _libc_trim()
    assert trim is not None
    trim()
