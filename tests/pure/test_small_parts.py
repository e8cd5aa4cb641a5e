"""Small parts of the core on their edges (scripts/mutation.py found them untested): the
registration record's optional fields, sizes in bytes, STATUS= with a failing disk, a
token bucket's burst, the retransmission window's end, nameservers from resolv.conf.

Oracles: the README's `B/registration` row, the `[outbox] max_disk` size syntax, and
resolv.conf(5).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.core.budget import TokenBucket
from agent.core.dedupe import RecentRequests
from agent.core.health import Health, HealthPolicy, OutboxHealth
from agent.core.messages import IncomingMessage, record_time
from agent.core.nameservers import from_resolv_conf
from agent.core.registration import RegState
from agent.core.sizes import InvalidSize, parse_size
from lab.fakes import Clock


def test_the_registration_record_with_every_optional_field() -> None:
    state = RegState(
        "failed", 503, "Service Unavailable", 0, "203.0.113.7:40123", 4.26, 3, "sip2.example:5060"
    )
    assert state.as_dict() == {
        "state": "failed",
        "code": 503,
        "reason": "Service Unavailable",
        "expires": 0,
        "public": "203.0.113.7:40123",
        "retry_in": 4.3,
        "attempt": 3,
        "server": "sip2.example:5060",
    }


@pytest.mark.parametrize(
    ("value", "size"), [(100, 100), ("100", 100), ("16M", 16 * 1024**2), ("512k", 512 * 1024)]
)
def test_sizes(value: str | int, size: int) -> None:
    assert parse_size(value) == size


def test_true_is_no_size() -> None:
    with pytest.raises(InvalidSize):
        parse_size(True)


def test_status_says_when_the_outbox_is_not_on_disk() -> None:
    health = Health(HealthPolicy(300, 600, 10), now=0.0)
    health.outbox_probe = lambda: OutboxHealth(5, None, "disk full", 5)
    assert health.status_suffix().startswith(
        "outbox 5; OUTBOX NOT DURABLE (disk full): 5 in memory"
    )


def test_a_token_buckets_burst_is_what_it_is_given() -> None:
    bucket = TokenBucket(1.0, burst=5, clock=Clock())
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    default = TokenBucket(1.0, clock=Clock())
    assert [default.take() for _ in range(3)] == [True, True, False]  # twice the rate


def test_a_retransmission_window_ends_after_keep_s() -> None:
    recent = RecentRequests(keep_s=40)
    assert not recent.repeat("k", now=0)
    assert recent.repeat("k", now=39.9)
    assert not recent.repeat("k", now=40)


def test_only_nameserver_lines_name_nameservers() -> None:
    text = "search example.org\nnameserver\nnameserver 192.0.2.53 # ours\ndomain 192.0.2.1\n"
    assert from_resolv_conf(text) == ["192.0.2.53"]


def test_a_new_message_keeps_every_field_it_is_given() -> None:
    msg = IncomingMessage.new(
        from_uri="<sip:a@b>", to_uri="<sip:c@d>", contact="<sip:a@192.0.2.7>", body="x",
        content_type="", source="192.0.2.7:5060", transport="tcp", truncated=True,
        raw_body=b"x", content_encoding="deflate", account="public", message_id="m1",
    )  # fmt: skip
    assert (msg.contact, msg.raw_body, msg.truncated) == ("<sip:a@192.0.2.7>", b"x", True)
    assert (msg.content_encoding, msg.account, msg.id) == ("deflate", "public", "m1")
    assert msg.content_type == "text/plain"
    east = datetime(2026, 1, 2, 5, 4, 5, 6000, timezone(timedelta(hours=2)))
    assert record_time(east) == "2026-01-02T03:04:05.006Z"
    assert record_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
