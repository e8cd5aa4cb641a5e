"""Numbers in the command language are bounded on every path before anything converts them."""

from __future__ import annotations

import json

import pytest

from agent.core.commands import CommandError, parse_request
from agent.core.durations import InvalidDuration, parse_duration

NINES = "9" * 5000
BIG = 65536  # max_message_bytes at its largest: long numbers reach the parser


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (f"blink lamp 1 1 {NINES}", "text/plain", "count '999"),
        ("blink lamp 1 1 100000", "text/plain", "is not a number 1..10000"),
        ("blink lamp 1 1 00000000001", "text/plain", "is not a number 1..10000"),
        (f"pulse gate {NINES}", "text/plain", "is not a duration"),
        (f"pulse gate {NINES}ms", "text/plain", "is not a duration"),
        (f"pulse gate 0.{NINES}", "text/plain", "is not a duration"),
        ("pulse gate 1234567890s", "text/plain", "is not a duration"),
        (f"set dimmer {NINES}%", "text/plain", "is not a level"),
        ("set dimmer 0000000000040%", "text/plain", "is not a level"),
        (
            json.dumps({"command": "blink", "target": "lamp", "on": 1, "off": 1, "count": NINES}),
            "application/json",
            "count '999",
        ),
        (
            '{"command": "blink", "target": "lamp", "count": ' + NINES + "}",
            "application/json",
            "invalid JSON: a number longer than 32 characters",
        ),
        (
            '{"command": "pulse", "target": "gate", "duration": 1e308}',
            "application/json",
            "is not a duration",
        ),
        (
            '{"command": "set", "target": "dimmer", "level": 1e999}',
            "application/json",
            "invalid JSON: the number 1e999 is out of range",
        ),
    ],
)
def test_long_numbers_are_refused_with_a_short_reason(
    body: str, content_type: str, reason: str
) -> None:
    with pytest.raises(CommandError) as err:
        parse_request(body, content_type, max_bytes=BIG)
    assert reason in str(err.value)
    assert len(str(err.value)) < 200  # the reason quotes an excerpt, not the number


@pytest.mark.parametrize(
    ("body", "args"),
    [
        ("blink lamp 200ms 800ms 10000", ("200ms", "800ms", "10000")),
        ("pulse gate 123456789.123456789ms", ("123456789.123456789ms",)),
        ("set dimmer 99.99999999%", ("99.99999999%",)),
    ],
)
def test_numbers_within_the_bounds_still_parse(body: str, args: tuple[str, ...]) -> None:
    assert parse_request(body, max_bytes=BIG).command.args == args


def test_a_duration_quotes_only_an_excerpt() -> None:
    with pytest.raises(InvalidDuration) as err:
        parse_duration(NINES)
    assert str(err.value).startswith("'" + "9" * 39 + "…' is not a duration")
