"""Long waits in words (agent.core.durations.format_minutes): rounded up to the minute, as
the lockout alert and `status` say them: `15m`, `1h30m`, `4h`.
"""

from __future__ import annotations

import pytest

from agent.core.durations import format_minutes


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "1m"),
        (1, "1m"),
        (60, "1m"),
        (61, "2m"),
        (900, "15m"),
        (3599, "1h"),
        (3600, "1h"),
        (3660, "1h01m"),
        (5400, "1h30m"),
        (14400, "4h"),
        (86400 + 60, "24h01m"),
    ],
)
def test_format_minutes(seconds: float, words: str) -> None:
    assert format_minutes(seconds) == words
