"""Text from outside (a SIP body, an MQTT payload, a note): one check, one way to quote it. Pure.

Whatever a stranger or a broker client sends may end up in a reply, an MQTT record or a log
line; `excerpt` keeps those echoes short, and `check_text` is the one rule for what text may
contain, so that every path (SIP, JSON, MQTT) refuses the same characters the same way.
"""

from __future__ import annotations

import unicodedata

# How much of an untrusted text an echo (a result record, a log line) carries at most.
ECHO_CHARS = 200


class BadText(ValueError):
    """Text with a character no path accepts; the message names it."""


def excerpt(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis when longer."""
    # Cut before splitting: a 20 MB payload must not be split into words first.
    head = text[: limit * 4]
    one_line = " ".join(head.split())
    if len(one_line) <= limit and len(head) == len(text):
        return one_line
    return one_line[: limit - 1] + "…"


def check_text(text: str, what: str, allowed_controls: str = "") -> None:
    """Raise BadText if `text` was not valid UTF-8 or holds a control or format character.

    Bytes that were not UTF-8 arrive decoded as U+FFFD (or as lone surrogates). Control
    characters (Cc) end lines and headers; format characters (Cf) include the bidirectional
    overrides that make text read differently from what it is. U+FFFE and U+FFFF are not
    characters at all (XML refuses them). `allowed_controls` lets a message body keep tabs
    and line breaks.
    """
    for char in text:
        if "\ud800" <= char <= "\udfff" or char == "\ufffd":
            raise BadText(f"{what} is not UTF-8 text")
        if char in allowed_controls:
            continue
        if unicodedata.category(char) in ("Cc", "Cf") or char in "\ufffe\uffff":
            raise BadText(f"{what} contains a control character (U+{ord(char):04X})")
