"""The run's shared counters of refused, dropped and limited things."""

from __future__ import annotations

from agent.core.counters import Counters


def test_counts_add_up_per_name_and_snapshot_lists_only_what_happened() -> None:
    counters = Counters()
    counters.bump("sip.invite.refused")
    counters.bump("sip.invite.refused", 2)
    counters.bump("mqtt.payload.dropped")
    counters.bump("never.happened", 0)
    assert counters.get("sip.invite.refused") == 3
    assert counters.get("unknown.name") == 0
    assert counters.snapshot() == {"mqtt.payload.dropped": 1, "sip.invite.refused": 3}
