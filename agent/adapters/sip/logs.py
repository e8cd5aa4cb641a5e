"""pjsip's log lines, into Python's logging: bounded, redacted, and read for the one event
pjsua2 reports no other way (a publication given up). Owner thread (pjsua2 calls `write`
from inside `libHandleEvents`).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import pjsua2 as pj

from agent.adapters.sip.guard import guarded
from agent.core.counters import Counters
from agent.core.lograte import LogThrottle
from agent.core.redact import redact_sip_dump
from agent.core.siptext import clean

pjlog = logging.getLogger("agent.pjsip")

# pjsua2 reports no PUBLISH outcome. When pjsua gives its publication up (any failure but 412)
# it logs this line (agent.adapters.sip.presence acts on it).
_PUBLISH_FAILED = "publication (PUBLISH) failed"
# pjsip's line for a packet it could not take (too long, unparsable), followed by the packet.
_BAD_PACKET = "Error processing packet"
# pjsip's lines can quote whole messages a stranger wrote; the journal gets this much.
MAX_LOG_LINE = 500


class PjLogWriter(pj.LogWriter):
    _LEVELS: ClassVar[dict[int, int]] = {
        0: logging.ERROR,
        1: logging.ERROR,
        2: logging.WARNING,
        3: logging.INFO,
    }

    def __init__(self, counters: Counters) -> None:
        super().__init__()
        self.counters = counters
        self.publish_failed = False
        self._quiet = LogThrottle(pjlog)

    @guarded("log_writer")
    def write(self, entry: pj.LogEntry) -> None:
        msg = clean(entry.msg).rstrip()
        if _PUBLISH_FAILED in msg:
            self.publish_failed = True  # acted on by SipStack.poll, outside pjsua's locks
        if msg.startswith(_BAD_PACKET):
            # pjsip quotes the whole packet: a stranger's 4 KB per line, as fast as sent.
            self._quiet.warning("packet", "%s", msg.split("\n", 1)[0][:MAX_LOG_LINE])
            return
        if entry.level <= 3 and len(msg) > MAX_LOG_LINE:  # debug (4+) quotes messages whole
            msg = f"{msg[:MAX_LOG_LINE]}… ({len(msg)} characters)"
        # At debug level pjsip logs whole MESSAGEs: their bodies may carry one-time codes.
        pjlog.log(self._LEVELS.get(entry.level, logging.DEBUG), "%s", redact_sip_dump(msg))
