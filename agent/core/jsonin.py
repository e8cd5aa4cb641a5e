"""JSON from outside, with bounds: one parser for every topic and body. Pure.

Python's `json.loads` has no bound a sender cannot reach: 100 000 nested `[` raise
RecursionError, a 5000-digit number raises a ValueError that is not a JSONDecodeError
(int's 4300-digit guard), `1e999` becomes infinity and `NaN` is accepted. Here every such
input gets `JsonInputError` with a reason meant for the sender. The size of the text is
bounded by whoever received it (the MQTT topic's payload bound, `access.max_message_bytes`).
"""

from __future__ import annotations

import json
import math
import re

# Every payload the agent reads is a flat object; a few levels leave room for nothing odd.
MAX_DEPTH = 8
# Longer than any int64 or any float repr ("-2.2250738585072014e-308" is 24).
MAX_NUMBER_CHARS = 32

# Strings (skipped whole, so brackets inside them do not count) and the brackets themselves.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class JsonInputError(ValueError):
    """JSON that is malformed or past a bound; the message ("invalid JSON: …") is for the sender."""


def loads(text: str) -> object:
    """The value of `text`, or JsonInputError (never RecursionError or another ValueError)."""
    _check_depth(text)
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except JsonInputError:
        raise
    except json.JSONDecodeError as err:
        raise JsonInputError(f"invalid JSON: {err.msg}") from None
    except (ValueError, RecursionError) as err:  # not expected past the checks; still a refusal
        raise JsonInputError(f"invalid JSON: {type(err).__name__}") from None


def _check_depth(text: str) -> None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise JsonInputError(f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
        elif token in "]}":
            depth -= 1


def _number_text(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonInputError(f"invalid JSON: a number longer than {MAX_NUMBER_CHARS} characters")
    return text


def _int(text: str) -> int:
    return int(_number_text(text))


def _float(text: str) -> float:
    value = float(_number_text(text))
    if not math.isfinite(value):
        raise JsonInputError(f"invalid JSON: the number {text} is out of range")
    return value


def _constant(name: str) -> float:
    raise JsonInputError(f"invalid JSON: {name} is not a number JSON allows")
