"""Text from pjsua2 made safe to store, log, encode and publish: one function, used once
per string at the adapter's edge (agent.adapters.sip.stack, agent.adapters.sip.gate,
agent.adapters.sip.presence).

SWIG hands C strings over with `surrogateescape`: a byte that was not UTF-8 (a stranger's
`"M\\xfcller" <sip:…>`) arrives as a lone surrogate, which json, sqlite and the journal
all refuse to encode. Such bytes become U+FFFD; NUL, which C strings cannot carry and
which truncates log lines, becomes U+FFFD too.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\ud800-\udfff\x00]")


def clean(text: str | None) -> str:
    """`text` with lone surrogates and NUL replaced by U+FFFD ("" for None)."""
    if not text:
        return ""
    return _UNSAFE.sub("\ufffd", text)


def original_bytes(text: str) -> bytes:
    """The bytes SWIG decoded into `text` (surrogateescape undone), to count or re-parse."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate SWIG did not make: count it as U+FFFD
        return text.encode("utf-8", "replace")
