"""Sizes as people write them in a config: `16M`, `512K`, `4MiB`, or a number of bytes. Pure.

K, M and G are powers of 1024 however they are written (`M`, `MB`, `MiB`): a disk quota
is not the place for the difference.
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"([0-9]+)\s*(?:([KMG])(?:I?B)?|B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


class InvalidSize(ValueError):
    """Text that is not a size; the message says what would be."""


def parse_size(value: str | int) -> int:
    """Bytes in `value`: an integer, or a number with K, M or G (KB, MiB, ... alike)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(str(value).strip())
    if match is None:
        raise InvalidSize(f"{value!r} is not a size (e.g. 512K, 16M, 1G, or bytes)")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def format_size(size: int) -> str:
    """`16777216` -> `16M`, `1536` -> `1.5K`, `100` -> `100B`."""
    for unit in ("G", "M", "K"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.1f}".removesuffix(".0") + unit
    return f"{size}B"
