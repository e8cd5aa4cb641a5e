"""Taking in a received MESSAGE: keep it, answer it, and say whether to act on it (owner thread).

pjsua 2.15 has answered 200 before the agent sees a MESSAGE: keeping it first (on disk, else
in memory: the outbox) means neither a broker outage nor a crash from here on can lose it.
With pjproject 2.16+ the answer goes out only now (the SIP adapter's `answer`): 200 once the
message is on disk (without MQTT: as it is handed to the dispatcher), 500 when the disk does
not take it, so the sender tries again, and nothing is relayed or done. A retransmission is
answered again and never acted on twice: the outbox's dedupe keys, or agent.core.dedupe's
without MQTT.
"""

from __future__ import annotations

import logging
import time

from agent.core.bridge import Bridge
from agent.core.counters import Counters
from agent.core.dedupe import RecentRequests
from agent.core.messages import IncomingMessage
from agent.core.ports import NOT_STORED, OK, Answering

log = logging.getLogger(__name__)


class Intake:
    """Keeps each received MESSAGE (through the bridge, if any) and answers it."""

    def __init__(self, sip: Answering, bridge: Bridge | None, counters: Counters) -> None:
        self._sip = sip
        self._bridge = bridge
        self._counters = counters
        # Without an outbox, retransmissions are recognised in memory (agent.core.dedupe).
        self.recent = RecentRequests(on_forget=self._forgot) if bridge is None else None

    def accept(self, msg: IncomingMessage, known: bool) -> bool:
        """Keep and answer `msg`; False: do nothing more (a repeat, or not kept: 500)."""
        if self._bridge is not None:
            deferred = self._sip.defers_answers
            kept = self._bridge.accept(msg, known, memory_ok=not deferred)
            if deferred and not kept.durable:
                self._sip.answer(msg, *NOT_STORED)
                return False
            repeat = kept.duplicate
        else:
            assert self.recent is not None
            repeat = self.recent.repeat(msg.request_key, time.monotonic())
            if repeat:
                log.info("MESSAGE from %s repeats %s: ignored", msg.from_uri, msg.request_key)
        self._sip.answer(msg, *OK)
        return not repeat  # a retransmission of one accepted (and acted on) before

    def _forgot(self) -> None:
        self._counters.bump("sip.dedupe.forgotten")
