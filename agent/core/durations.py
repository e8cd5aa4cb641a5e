"""Durations as people write them: `500ms`, `2s`, `1.5`, `1m`. Pure."""

from __future__ import annotations

import math
import re

from agent.core.untrusted import excerpt

# At most 9 digits before and after the point: far past any bound an output allows, and no
# sender can make the agent read a number of 5000 digits.
_DURATION = re.compile(
    r"([0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})\s*(ms|s|sec|secs|m|min)?", re.IGNORECASE
)
_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0, "m": 60.0, "min": 60.0}


class InvalidDuration(ValueError):
    """Text that is not a duration; the message says what would be."""


def parse_duration(text: str) -> float:
    """Seconds in `text` (a number with an optional unit ms, s or m; plain numbers are s)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidDuration(f"'{excerpt(text, 40)}' is not a duration (e.g. 500ms, 2s, 1.5s, 1m)")
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def format_duration(seconds: float) -> str:
    """`0.5` -> `500ms`, `2.0` -> `2s`, `1.25` -> `1.25s`, `90` -> `90s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def format_minutes(seconds: float) -> str:
    """A long wait as people say it, rounded up to the minute: `15m`, `1h30m`, `4h`."""
    minutes = max(1, math.ceil(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes}m"
    return f"{hours}h" + (f"{minutes:02d}m" if minutes else "")
