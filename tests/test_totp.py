"""One-time codes: RFC 6238's own test vectors, skew, and each code usable once."""

from __future__ import annotations

import base64

import pytest

from agent.totp import CodeChecker, InvalidSecret, decode_secret, hotp, totp

RFC_KEY = b"12345678901234567890"  # RFC 6238 appendix B, SHA1

# (unix time, 8-digit TOTP) from RFC 6238 appendix B, SHA1 column.
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("when", "code"), RFC_VECTORS)
def test_rfc6238_vectors(when: int, code: str) -> None:
    assert totp(RFC_KEY, when, digits=8) == code
    assert totp(RFC_KEY, when) == code[-6:]  # 6 digits are the same value mod 10**6


def test_rfc4226_hotp_vectors() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676"]
    assert [hotp(RFC_KEY, i) for i in range(6)] == expected


def test_secrets_are_base32_as_apps_show_them() -> None:
    text = base64.b32encode(RFC_KEY).decode()
    assert decode_secret(text) == RFC_KEY
    spaced = " ".join(text[i : i + 4] for i in range(0, len(text), 4)).lower()
    assert decode_secret(spaced.rstrip("=")) == RFC_KEY
    for bad, reason in [("", "empty"), ("1111", "not base32"), ("GEZDGNBV", "too short")]:
        with pytest.raises(InvalidSecret, match=reason):
            decode_secret(bad)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_code_is_accepted_once() -> None:
    clock = Clock(1111111111)
    checker = CodeChecker(clock)
    code = totp(RFC_KEY, clock.now)
    assert checker.check("sip:a@x", RFC_KEY, code) is True
    assert checker.check("sip:a@x", RFC_KEY, code) is False  # replay
    # Codes are per user: the same key of another user has its own history.
    assert checker.check("sip:b@x", RFC_KEY, code) is True


def test_one_step_of_skew_either_way_and_no_more() -> None:
    clock = Clock(1111111111)
    checker = CodeChecker(clock)
    assert checker.check("u", RFC_KEY, totp(RFC_KEY, clock.now - 30)) is True
    assert checker.check("u", RFC_KEY, totp(RFC_KEY, clock.now + 30)) is True
    assert checker.check("v", RFC_KEY, totp(RFC_KEY, clock.now - 60)) is False
    assert checker.check("v", RFC_KEY, totp(RFC_KEY, clock.now + 60)) is False


def test_an_older_code_is_useless_after_a_newer_one() -> None:
    clock = Clock(1111111111)
    checker = CodeChecker(clock)
    assert checker.check("u", RFC_KEY, totp(RFC_KEY, clock.now)) is True
    assert checker.check("u", RFC_KEY, totp(RFC_KEY, clock.now - 30)) is False
    clock.now += 30
    assert checker.check("u", RFC_KEY, totp(RFC_KEY, clock.now)) is True


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12345\n"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert CodeChecker(Clock(59)).check("u", RFC_KEY, code) is False
