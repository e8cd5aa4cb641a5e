"""Single config values: GPIO pin names, hosts, host:port (pure, no I/O)."""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
_PIN = re.compile(r"(GPIO|BCM|BOARD|J8:)?([0-9]+)")
_PIN_HINT = "use GPIO0..GPIO27, BOARD<n> or a number"
_MAX_BCM = 27
# Raspberry Pi 40-pin header (J8), physical pin -> BCM GPIO; the pins not listed are power/ground.
_HEADER = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10,
    21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
    36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip


class InvalidPin(ValueError):
    """A pin name that is not a GPIO on the Raspberry Pi header; the message says why."""


def parse_pin(value: str | int) -> str:
    """Normalize GPIO17, BCM17, 17, BOARD11 or J8:11 to "GPIO17"; raise InvalidPin saying why."""
    match = _PIN.fullmatch(str(value).upper())
    if match is None:
        raise InvalidPin(f"unknown pin {value!r} ({_PIN_HINT})")
    prefix, number = match.group(1), int(match.group(2))
    if prefix in ("BOARD", "J8:"):
        if not 1 <= number <= 40:
            raise InvalidPin(f"unknown pin {value!r} ({_PIN_HINT})")
        if number not in _HEADER:
            raise InvalidPin(f"{value!r} is a power or ground pin, not a GPIO")
        number = _HEADER[number]
    elif number > _MAX_BCM:
        raise InvalidPin(f"unknown pin {value!r} ({_PIN_HINT})")
    return f"GPIO{number}"


def split_host_port(text: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port" into a bind address (no brackets) and a port."""
    not_host_port = ValueError(f"{text!r} is not host:port (e.g. '0.0.0.0:5060' or '[::1]:5060')")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not _is_ip(host, version=6):
            raise not_host_port
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host or not is_host(host):  # IPv6 needs brackets
            raise not_host_port
    if not (port.isascii() and port.isdigit()):
        raise not_host_port
    if int(port) > 65535:
        raise ValueError(f"port {port} is out of range 0..65535")
    return host, int(port)


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def is_host(text: str) -> bool:
    """True for an IP address or a DNS host name."""
    return _is_ip(text) or (len(text) <= 253 and _HOSTNAME.fullmatch(text) is not None)
