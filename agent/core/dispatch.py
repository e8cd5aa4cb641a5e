"""From a message (or a call) to what happens: rate limit, parse, authorize, execute, log.

Runs on the owner thread. The same path serves SIP MESSAGEs, `B/command` over MQTT (as
`mqtt.identity`) and calls from allowed callers, so one set of rules applies to all three.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.config.model import AccessConfig
from agent.core import commands
from agent.core.access import decide, identity_of, may_use
from agent.core.counters import Counters
from agent.core.durations import format_duration, format_minutes
from agent.core.logfields import journal_fields
from agent.core.ratelimit import RateLimiter
from agent.core.ratelimit import Verdict as RateVerdict
from agent.core.record import record
from agent.core.redact import redact_codes
from agent.core.throttle import Throttle

if TYPE_CHECKING:
    from agent.core.codes import CodeGuard, CodeResult, Store

log = logging.getLogger(__name__)


@record
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
        code_store: Store | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.access = access
        self.controls = controls
        self.counters = counters if counters is not None else Counters()
        self._code_store = code_store
        self._wall_clock = wall_clock
        # Where a user has a secret, the record is read now: a damaged one is reported at start.
        self._codes = self._new_codes() if _has_secrets(access) else None
        self._clock = clock
        self.limiter = self._new_limiter()
        self._say = Throttle(clock=clock)

    def _new_limiter(self) -> RateLimiter:
        # `self.access`, not the one given at start: a reload may change who is configured.
        return RateLimiter(
            self.access.rate_per_minute,
            self.access.rate_burst,
            self._clock,
            known=lambda identity: self.access.rights_of(identity) is not None,
        )

    def reconfigure(self, access: AccessConfig) -> None:
        """New rules from a reload. Spent one-time codes stay spent; the buckets are kept
        unless the rate itself changed."""
        old, self.access = self.access, access
        if (old.rate_per_minute, old.rate_burst) != (access.rate_per_minute, access.rate_burst):
            self.limiter = self._new_limiter()
        if self._codes is not None:
            self._codes.max_failures = access.code_failures
            self._codes.lockout_s = access.code_lockout_s
        elif _has_secrets(access):
            self._codes = self._new_codes()  # the first secret: its record is read now

    @property
    def codes(self) -> CodeGuard:
        """The one-time code guard, built when first needed: an agent where no user has a
        secret never imports agent.core.codes nor reads the record."""
        if self._codes is None:
            self._codes = self._new_codes()
        return self._codes

    def _new_codes(self) -> CodeGuard:
        from agent.core.codes import CodeGuard

        return CodeGuard(
            self._code_store,
            self._wall_clock,
            failures=self.access.code_failures,
            lockout_s=self.access.code_lockout_s,
        )

    def handle(
        self,
        sender: str,
        body: str,
        content_type: str = "text/plain",
        via: str = "SIP",
        *,
        source: str = "",
        authenticated: bool = True,
    ) -> Outcome:
        """Carry out `body` as a command from `sender`; never raises for any input.

        `source`: the address the request came from (its own rate-limit bucket).
        `authenticated=False` (nobody vouches for the From, e.g. direct mode): no reply
        depends on whether the sender is configured unless its command was carried out,
        so that forged Froms cannot tell configured users from strangers.
        """
        identity = identity_of(sender)
        known = self.access.rights_of(identity) is not None
        verdict = self.limiter.take(identity, host_of(source))
        if not verdict.allowed:
            return self._limited(identity, known, via, verdict, authenticated)
        try:
            request = commands.parse_request(body, content_type, self.access.max_message_bytes)
        except commands.CommandError as err:
            return self._refused_parse(identity, known, via, str(err), authenticated)
        cmd = request.command
        if cmd.name == "help" and not authenticated:
            # The same answer for everyone: which commands a From may use would say who it is.
            log.info("help for %s (%s): the whole language (senders are not authenticated)",
                     identity, via)  # fmt: skip
            return Outcome(known, "help", None, self._unless_silent(commands.help_text()))
        decision = decide(
            identity,
            cmd,
            request.code,
            self.access,
            self.controls.output_names(),
            lambda who, key, code: self._check_code(who, key, code, via, source),
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
            if decision.known and authenticated:
                return Outcome(False, cmd.name, cmd.target, f"error: {decision.reply}")
            return Outcome(False, cmd.name, cmd.target, self._forbidden())
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

    def _forbidden(self) -> str:
        return "" if self.access.on_forbidden == "silent" else "error: forbidden"

    def _unless_silent(self, text: str) -> str:
        return "" if self.access.on_forbidden == "silent" else f"ok: {text}"

    def _limited(
        self, identity: str, known: bool, via: str, verdict: RateVerdict, authenticated: bool
    ) -> Outcome:
        self.counters.bump("access.command.limited")
        # One line per sender and minute at most (strangers share one): a flood is one line.
        say = self._say.say(f"rate {identity}" if known else "rate strangers")
        if say.now:
            log.warning(
                "refused a command from %s (%s): rate limit, next in %s%s",
                identity, via, format_duration(verdict.retry_after_s),
                f" ({say.suppressed} more refused since the last such line)"
                if say.suppressed else "",
            )  # fmt: skip
        reply = ""
        if verdict.first_refusal and known and authenticated:
            # Whole seconds, rounded up: "try again in 1.004s" reads like noise.
            wait = format_duration(max(1.0, math.ceil(verdict.retry_after_s)))
            reply = f"error: too many commands; try again in {wait}"
        return Outcome(known, None, None, reply)

    def _check_code(
        self, identity: str, key: bytes, code: str, via: str, source: str
    ) -> CodeResult:
        from agent.core.codes import Verdict

        result = self.codes.check(key, code)
        if result.verdict is Verdict.WRONG:
            self.counters.bump("access.code.wrong")
        elif result.verdict is Verdict.UNRECORDED:
            self.counters.bump("access.code.unrecorded")
        if result.lockout_started:
            self.counters.bump("access.code.lockout")
            log.error(
                "ALERT: %d wrong one-time codes for %s within %s, the last from %s (%s): "
                "every code of that secret is refused for %s. Someone may be guessing.",
                result.failures, identity, format_minutes(self.codes.lockout_s),
                source or "?", via, format_minutes(result.locked_for_s),
                extra=journal_fields(sender=identity, via=via, ok=0),
            )  # fmt: skip
        return result

    def _refused_parse(
        self, identity: str, known: bool, via: str, reason: str, authenticated: bool
    ) -> Outcome:
        logged = redact_codes(reason)  # a mistyped code may be quoted in it
        if not authenticated:
            # Everyone gets the parse error (or nothing): configured or not looks the same.
            log.info("bad command from %s (%s): %s", identity, via, logged)
            silent = self.access.on_forbidden == "silent"
            return Outcome(known, None, None, "" if silent else f"error: {reason}")
        if not known:
            # Strangers learn nothing about the language, not even that it is wrong.
            log.warning("refused a message from %s (%s): not allowed (%s)", identity, via, logged)
            return Outcome(False, None, None, self._forbidden())
        log.info("bad command from %s (%s): %s", identity, via, logged)
        return Outcome(True, None, None, f"error: {reason}")


def _has_secrets(access: AccessConfig) -> bool:
    return any(rights.totp_secret is not None for rights in access.users)


def host_of(source: str) -> str:
    """The host of a "host:port" source address ("[v6]:port" too); "" stays ""."""
    if source.startswith("["):
        return source[1:].split("]", 1)[0]
    return source.rsplit(":", 1)[0] if source.count(":") == 1 else source
