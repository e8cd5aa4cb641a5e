"""The per-sender token bucket, on a fake clock."""

from __future__ import annotations

from agent.core.ratelimit import MAX_STRANGERS, RateLimiter
from lab.fakes import Clock


def test_a_burst_then_one_per_interval() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(per_minute=6, burst=3, clock=clock)
    assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.take("a")
    assert refused.allowed is False and refused.first_refusal is False
    clock.now += 10  # one token back (6 per minute)
    assert limiter.take("a").allowed is True
    assert limiter.take("a").allowed is False


def test_only_the_first_refusal_of_a_streak_is_worth_a_reply() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    limiter.take("a")
    first = limiter.take("a")
    assert (first.allowed, first.first_refusal) == (False, True)
    assert 0 < first.retry_after_s <= 1.0
    assert limiter.take("a").first_refusal is False
    clock.now += 1
    assert limiter.take("a").allowed is True
    assert limiter.take("a").first_refusal is True  # a new streak


def test_senders_have_their_own_buckets() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock(1000.0))
    assert limiter.take("a").allowed is True
    assert limiter.take("a").allowed is False
    assert limiter.take("b").allowed is True


def test_the_table_of_senders_is_bounded() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock(1000.0))
    for i in range(MAX_STRANGERS + 50):
        limiter.take(f"sip:forged{i}@x")
    assert limiter.sizes() == (0, MAX_STRANGERS)


def test_a_clock_going_back_gives_no_tokens() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    limiter.take("a")
    clock.now -= 100
    assert limiter.take("a").allowed is False
