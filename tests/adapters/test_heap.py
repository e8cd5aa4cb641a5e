"""When the owner loop gives heap memory back: after traffic, after quiet periods."""

from __future__ import annotations

from agent.adapters.heap import QUIET_S, HeapTrimmer, _libc_trim


def test_trims_twice_after_traffic_has_been_quiet_long_enough() -> None:
    trims: list[float] = []
    heap = HeapTrimmer(trim=lambda: trims.append(1), quiet_s=40, early_s=5)
    heap.seen(0, now=0)
    assert heap.due(now=100) is False  # no traffic yet: nothing to give back
    heap.seen(500, now=100)
    assert heap.due(now=104) is False  # the burst's transactions still alive
    heap.seen(900, now=104)  # more traffic restarts the quiet periods
    assert heap.due(now=108) is False
    assert heap.due(now=109) is True  # the flood's short-lived transactions are gone
    assert heap.due(now=110) is False
    assert heap.due(now=143) is False
    assert heap.due(now=144) is True  # those with the full Timer J too
    assert heap.due(now=300) is False  # twice per burst
    assert len(trims) == 2


def test_quiet_period_outlasts_pjsips_timer_j() -> None:
    assert QUIET_S > 32  # 64 * T1 over UDP


def test_glibc_trim_is_found_here() -> None:
    # The agent runs on Debian/Raspberry Pi OS (glibc); elsewhere trimming is simply off.
    trim = _libc_trim()
    assert trim is not None
    trim()
