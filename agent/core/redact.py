"""Keep one-time codes out of the logs. Pure.

A code in a log is a code someone else may read in time to use it (a journal shipped
elsewhere, a debug log attached to a bug report). What is redacted: runs of 4 to 8 digits
standing alone (a code, or one mistyped by a digit), `123 456` and `123-456` (as
authenticator apps show them), and the value of a JSON "code" field; in a SIP message that
pjsip logs at debug level, only the body.
"""

from __future__ import annotations

import re

MASK = "******"
_CODE_LIKE = re.compile(r"(?<![0-9A-Za-z+])(?:[0-9]{3}[ -][0-9]{3}|[0-9]{4,8})(?![0-9A-Za-z])")
_JSON_CODE = re.compile(r'("code"\s*:\s*)("(?:[^"\\]|\\.)*"|[0-9]+)', re.IGNORECASE)
# pjsip's message dump: headers, a blank line, the body, then this line.
_END_OF_DUMP = "--end msg--"


def redact_codes(text: str) -> str:
    """`text` with anything that may be a one-time code masked."""
    return _CODE_LIKE.sub(MASK, _JSON_CODE.sub(rf'\1"{MASK}"', text))


def redact_sip_dump(text: str) -> str:
    """A pjsip log entry, with codes masked in the body of any SIP message it shows."""
    for blank in ("\r\n\r\n", "\n\n"):
        head, sep, rest = text.partition(blank)
        if sep:
            body, end, tail = rest.partition(_END_OF_DUMP)
            return head + sep + redact_codes(body) + end + tail
    return text
