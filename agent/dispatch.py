"""From a message (or a call) to what happens: rate limit, parse, authorize, execute, log.

Runs on the owner thread. The same path serves SIP MESSAGEs, `B/command` over MQTT (as
`mqtt.identity`) and calls from allowed callers, so one set of rules applies to all three.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent import commands
from agent.access import decide, identity_of, may_use
from agent.config import AccessConfig
from agent.durations import format_duration
from agent.logfields import journal_fields
from agent.ratelimit import RateLimiter
from agent.totp import CodeChecker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one command; `reply` is "" when nothing is to be sent back."""

    authorized: bool
    name: str | None
    target: str | None
    reply: str

    @property
    def ok(self) -> bool:
        return self.reply.startswith("ok:")


class Dispatcher:
    def __init__(
        self,
        access: AccessConfig,
        controls: commands.Controls,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.access = access
        self.controls = controls
        self.codes = CodeChecker(wall_clock)
        self._clock = clock
        self.limiter = RateLimiter(access.rate_per_minute, access.rate_burst, clock)

    def reconfigure(self, access: AccessConfig) -> None:
        """New rules from a reload. Spent one-time codes stay spent; the buckets are kept
        unless the rate itself changed."""
        old, self.access = self.access, access
        if (old.rate_per_minute, old.rate_burst) != (access.rate_per_minute, access.rate_burst):
            self.limiter = RateLimiter(access.rate_per_minute, access.rate_burst, self._clock)

    def handle(
        self, sender: str, body: str, content_type: str = "text/plain", via: str = "SIP"
    ) -> Outcome:
        """Carry out `body` as a command from `sender`; never raises for any input."""
        identity = identity_of(sender)
        known = self.access.rights_of(identity) is not None
        verdict = self.limiter.take(identity)
        if not verdict.allowed:
            log.warning(
                "refused a command from %s (%s): rate limit, next in %s",
                identity,
                via,
                format_duration(verdict.retry_after_s),
            )
            reply = ""
            if verdict.first_refusal and known:
                # Whole seconds, rounded up: "try again in 1.004s" reads like noise.
                wait = format_duration(max(1.0, math.ceil(verdict.retry_after_s)))
                reply = f"error: too many commands; try again in {wait}"
            return Outcome(known, None, None, reply)
        try:
            request = commands.parse_request(body, content_type, self.access.max_message_bytes)
        except commands.CommandError as err:
            return self._refused_parse(identity, known, via, str(err))
        cmd = request.command
        decision = decide(
            identity,
            cmd,
            request.code,
            self.access,
            self.controls.output_names(),
            self.codes.check,
        )
        if not decision.allowed:
            log.warning(
                "refused %r from %s (%s): %s",
                cmd.text,
                identity,
                via,
                decision.reason,
                extra=journal_fields(sender=identity, command=cmd.name, via=via, ok=0),
            )
            if not decision.known and self.access.on_forbidden == "silent":
                return Outcome(False, cmd.name, cmd.target, "")
            return Outcome(False, cmd.name, cmd.target, f"error: {decision.reply}")
        rights = self.access.rights_of(identity)
        allowed = may_use(rights) if rights is not None else None
        result = commands.execute(cmd, self.controls, allowed)
        log.info(
            "command %r from %s (%s): %s",
            cmd.text,
            identity,
            via,
            result.reply,
            extra=journal_fields(sender=identity, command=cmd.name, via=via, ok=int(result.ok)),
        )
        return Outcome(True, cmd.name, cmd.target, result.reply)

    def _refused_parse(self, identity: str, known: bool, via: str, reason: str) -> Outcome:
        if not known:
            # Strangers learn nothing about the language, not even that it is wrong.
            log.warning("refused a message from %s (%s): not allowed (%s)", identity, via, reason)
            reply = "" if self.access.on_forbidden == "silent" else "error: forbidden"
            return Outcome(False, None, None, reply)
        log.info("bad command from %s (%s): %s", identity, via, reason)
        return Outcome(True, None, None, f"error: {reason}")
