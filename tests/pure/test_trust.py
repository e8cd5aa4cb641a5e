"""Who counts as the proxy (agent.core.trust), the shared budgets (agent.core.budget), quiet
logs."""

from __future__ import annotations

import logging

import pytest

from agent.core.budget import TokenBucket
from agent.core.lograte import LogThrottle
from agent.core.trust import LEARNED, Trust


@pytest.mark.parametrize(
    ("configured", "source", "trusted"),
    [
        (["192.0.2.50"], "192.0.2.50", True),
        (["192.0.2.50"], "192.0.2.51", False),
        (["192.0.2.0/24"], "192.0.2.77", True),
        (["2001:db8::/32"], "2001:db8::5", True),
        (["[2001:db8::5]"], "2001:db8:0::5", False),  # sources come normalized from pjsip
        (["pbx.example.org"], "192.0.2.50", False),  # names count once looked up
        ([], "not an address", False),
    ],
)
def test_configured_addresses_and_networks(
    configured: list[str], source: str, trusted: bool
) -> None:
    assert Trust(configured).contains(source) is trusted


def test_looked_up_addresses_replace_the_ones_before() -> None:
    trust = Trust()
    trust.resolved("pbx.example.org", ["192.0.2.50", "2001:db8:0:0::1"])
    assert trust.contains("192.0.2.50") and trust.contains("2001:db8::1")
    trust.resolved("pbx.example.org", ["192.0.2.60"])
    assert not trust.contains("192.0.2.50") and trust.contains("192.0.2.60")


def test_registrar_answers_are_learned_and_only_the_last_few_kept() -> None:
    trust = Trust()
    for i in range(LEARNED + 2):
        trust.learn(f"198.51.100.{i}")
    assert not trust.contains("198.51.100.0") and not trust.contains("198.51.100.1")
    assert all(trust.contains(f"198.51.100.{i}") for i in range(2, LEARNED + 2))
    assert "198.51.100.9" in trust.describe()


def test_a_token_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [True] * 4 + [False]
    now[0] += 0.5
    assert [bucket.take() for _ in range(2)] == [True, False]
    assert not TokenBucket(0, clock=lambda: now[0]).take()  # rate 0: nothing, ever


def test_flood_log_lines_come_once_then_once_a_minute_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    quiet = LogThrottle(logging.getLogger("t"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            quiet.warning("flood", "dropped %s", "x")
        now[0] += 61
        quiet.warning("flood", "dropped %s", "y")
        quiet.warning("other", "another kind")
    assert [r.getMessage() for r in caplog.records] == [
        "dropped x",
        "dropped y (99 more like it in the last 60s)",
        "another kind",
    ]


# -- edges (scripts/mutation.py): what the kernel filter is given, what `status` shows -------


def test_the_networks_for_the_kernel_filter_and_the_status_line() -> None:
    trust = Trust(["192.0.2.0/31", "192.0.2.77/24", "[2001:db8::5]", "198.51.100.7", "pbx"])
    assert Trust().describe() == "nobody yet"
    trust.resolved("pbx.example.org", ["[2001:db8::9]", "203.0.113.5"])
    trust.learn("[2001:db8::7]")
    assert trust.describe() == (
        "198.51.100.7, 2001:db8::5, 2001:db8::7, 2001:db8::9, 203.0.113.5, "
        "192.0.2.0/31, 192.0.2.0/24"
    )
    assert [str(n) for n in trust.networks()] == [
        "198.51.100.7/32",
        "2001:db8::5/128",
        "2001:db8::7/128",
        "2001:db8::9/128",
        "203.0.113.5/32",
        "192.0.2.0/31",
        "192.0.2.0/24",
    ]


@pytest.mark.parametrize(
    ("source", "trusted"),
    [("192.0.2.1", True), ("192.0.2.200", True), ("[2001:db8::1:1]", True), ("[::1]", False)],
)
def test_a_bracketed_or_plain_source_in_a_network(source: str, trusted: bool) -> None:
    # A /31 is two addresses: a network, not one address (192.0.2.77/24: host bits allowed).
    trust = Trust(["192.0.2.0/31", "192.0.2.77/24", "2001:db8::/64"])
    assert trust.contains(source) is trusted


def test_a_name_that_resolves_to_no_address_keeps_its_text() -> None:
    trust = Trust()
    trust.resolved("pbx", ["not an address"])
    assert trust.contains("not an address")  # compared as given, never as an address
    assert trust.networks() == []


def test_a_source_that_is_no_address_is_never_in_a_network() -> None:
    assert Trust(["192.0.2.0/24"]).contains("not an address") is False
