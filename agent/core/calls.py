"""Incoming calls: always rejected; an allowed caller may first fire the configured action.

The classic SIP gate opener: the owner calls, the gate pulses, the call is refused, and
the caller pays nothing. Pure decisions; the SIP adapter answers with the code.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from agent.config.model import AccessConfig, CallConfig
from agent.core.access import identity_of
from agent.core.dispatch import Dispatcher, Outcome
from agent.core.messages import record_time
from agent.core.record import record

log = logging.getLogger(__name__)


@record
class CallOutcome:
    """What became of an incoming call: its answer code and its action, if any."""

    caller: str
    code: int
    authorized: bool
    action: Outcome | None  # None: no action configured, or a stranger
    received: datetime

    def record(self) -> dict[str, Any]:
        """The JSON object published on `B/call/in`."""
        action = self.action
        return {
            "from": self.caller,
            "received": record_time(self.received),
            "authorized": self.authorized,
            "code": self.code,
            "action": None
            if action is None
            else {"name": action.name, "target": action.target, "result": action.reply},
        }


def handle_call(
    caller: str, source: str, calls: CallConfig, access: AccessConfig, dispatcher: Dispatcher
) -> CallOutcome:
    """Run the call action for an allowed caller (under its rights); the code to reject with."""
    identity = identity_of(caller)
    known = access.rights_of(identity) is not None
    action = None
    if known and calls.action:
        # The same path as a message: rights, rate limit and one-time codes apply, so a
        # protected output cannot be moved by a call (a call carries no code).
        action = dispatcher.handle(caller, calls.action, "text/plain", "call", source=source)
    outcome = CallOutcome(identity, calls.reject_code, known, action, datetime.now(UTC))
    what = f"action {action.reply!r}" if action else ("no action" if known else "not allowed")
    log.info("call from %s at %s rejected with %d: %s", identity, source, calls.reject_code, what)
    return outcome
