"""The watchdog's health decision (pure) and its bookkeeping on the owner loop."""

from __future__ import annotations

import logging

import pytest

from agent.core.health import Health, HealthPolicy, OutboxHealth, verdict
from agent.core.logfields import journal_fields

POLICY = HealthPolicy(registration_grace_s=300, outbox_stuck_s=600, loop_stall_s=10)

# (name, now, last_turn, registration failing since, outbox, healthy, reason fragment)
CASES = [
    ("all well", 1000, 999.5, None, None, True, ""),
    ("loop stalled", 1000, 980, None, None, False, "owner loop last turned 20 s ago"),
    ("registration failing within grace", 1000, 1000, 750, None, True, ""),
    (
        "registration failing past grace",
        1000,
        1000,
        650,
        None,
        False,
        "registration failing for 350 s (grace 300 s)",
    ),
    ("outbox moving", 1000, 1000, None, OutboxHealth(40, None), True, ""),
    ("outbox stuck within limit", 1000, 1000, None, OutboxHealth(3, 500), True, ""),
    (
        "outbox stuck past limit",
        1000,
        1000,
        None,
        OutboxHealth(7, 300),
        False,
        "outbox stuck for 700 s with 7 queued (limit 600 s)",
    ),
    ("a stalled loop is named first", 1000, 900, 0, OutboxHealth(1, 0), False, "owner loop"),
]


@pytest.mark.parametrize(
    ("now", "last_turn", "failing_since", "outbox", "healthy", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_verdict(now, last_turn, failing_since, outbox, healthy, reason) -> None:
    result = verdict(
        now,
        last_turn=last_turn,
        registration_failing_since=failing_since,
        outbox=outbox,
        policy=POLICY,
    )
    assert result.healthy is healthy
    assert reason in result.reason
    assert (result.reason == "") is healthy


def test_not_registered_counts_from_the_start_and_registration_clears_it() -> None:
    health = Health(POLICY, now=0)
    health.turned(299, "unregistered")
    assert health.check(299).healthy
    health.turned(301, "failed")
    assert not health.check(301).healthy
    health.turned(302, "registered")
    assert health.check(302).healthy
    # A new failure starts a new grace period, from when it was first seen.
    health.turned(400, "failed")
    health.turned(650, "failed")
    assert health.check(650).healthy
    health.turned(701, "failed")
    assert not health.check(701).healthy


def test_direct_mode_is_healthy_without_registration() -> None:
    health = Health(POLICY, now=0)
    health.turned(5000, "direct")
    assert health.check(5000).healthy


def test_losing_and_regaining_health_is_logged_once_each(caplog) -> None:
    caplog.set_level(logging.INFO, logger="agent.core.health")
    health = Health(POLICY, now=0)
    health.turned(400, "failed")
    for t in (401, 402):
        health.check(t)
    health.turned(403, "registered")
    health.check(403)
    health.check(404)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "unhealthy: registration failing for 401 s (grace 300 s); "
        "watchdog pings stop, systemd restarts",
        "healthy again: watchdog pings resume",
    ]


def test_status_shows_the_outbox_depth_from_its_hook_and_any_sickness() -> None:
    health = Health(POLICY, now=0)
    assert health.status_suffix() == ""
    health.outbox_probe = lambda: OutboxHealth(12, None)
    health.turned(1, "registered")
    health.check(1)
    assert health.status_suffix() == "outbox 12"
    health.outbox_probe = lambda: OutboxHealth(12, 0)
    health.turned(700, "registered")
    health.check(700)
    assert health.status_suffix() == (
        "outbox 12; UNHEALTHY: outbox stuck for 700 s with 12 queued (limit 600 s)"
    )


def test_journal_fields_are_upper_case_and_skip_none() -> None:
    fields = journal_fields(sender="sip:a@b", command=None, sip_status=200)
    assert fields == {"SENDER": "sip:a@b", "SIP_STATUS": "200"}
