"""One-time codes (TOTP, RFC 6238: HMAC-SHA1, 30 s steps, 6 digits). Pure.

Checking them (once each, with a lockout) is agent.core.codes's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import struct

STEP_S = 30
DIGITS = 6
# One step either side: a phone clock a little off, or a code typed just before it rolled over.
SKEW_STEPS = 1
CODE = re.compile(r"[0-9]{6}")


class InvalidSecret(ValueError):
    """A TOTP secret that is not base32 text (as authenticator apps show and scan it)."""


def decode_secret(text: str) -> bytes:
    """The key bytes of a base32 secret; spaces, dashes, case and missing padding are forgiven."""
    cleaned = re.sub(r"[\s-]", "", text).upper().rstrip("=")
    if not cleaned:
        raise InvalidSecret("empty TOTP secret")
    try:
        key = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        raise InvalidSecret("TOTP secret is not base32 (letters A-Z and digits 2-7)") from None
    if len(key) < 10:
        raise InvalidSecret(f"TOTP secret too short ({len(key)} bytes; use at least 10, e.g. 20)")
    return key


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 HOTP value for `counter`."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(key: bytes, unix_time: float, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 6238 TOTP value at `unix_time`."""
    return hotp(key, int(unix_time // STEP_S), digits, digest)
