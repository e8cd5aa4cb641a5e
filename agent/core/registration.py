"""When to (re-)register: bounded exponential backoff with jitter, periodic checks, link changes.

Pure decisions, no I/O and no pjsua2: the SIP adapter tells `Keeper` what happened (a REGISTER
outcome, a changed local address) with the current monotonic time, asks `due(now)` what to do,
and carries it out. Why the agent keeps its own schedule instead of pjsua's (docs/pjsip.md):
pjsua waits `retryIntervalSec` (300 s by default) after a failed refresh, and its NAT checks
miss a mapping that changed only its port; a REGISTER sent on our schedule finds the new
mapping, and pjsua's contact rewrite then corrects the binding.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from enum import Enum

from agent.core.record import record


@record
class RegState:
    """The account's registration as the agent reports it."""

    state: str  # "registered" | "registering" | "unregistered" | "failed" | "direct"
    code: int
    reason: str
    expires: int
    public: str = ""  # "ip:port" the registrar saw us at (Via received/rport), "" if unknown
    retry_in_s: float | None = None  # failed: the next attempt comes this much later
    attempt: int = 0  # consecutive failures so far
    server: str = ""  # "host:port" of the provider's server in use, when SRV chose it

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "state": self.state,
            "code": self.code,
            "reason": self.reason,
            "expires": self.expires,
        }
        if self.public:
            d["public"] = self.public
        if self.retry_in_s is not None:
            d["retry_in"] = round(self.retry_in_s, 1)
        if self.attempt:
            d["attempt"] = self.attempt
        if self.server:
            d["server"] = self.server
        return d


def reg_state_of(code: int, reason: str, expires: int, *, unregistering: bool) -> RegState:
    """Map a REGISTER outcome to the agent's registration state."""
    if 200 <= code < 300:
        state = "unregistered" if unregistering or expires <= 0 else "registered"
    else:
        state = "failed"
    return RegState(state, code, reason, max(expires, 0) if state == "registered" else 0)


class Action(Enum):
    REGISTER = "register"  # after a failure or a link change: a REGISTER now, on our schedule
    CHECK = "check"  # periodic: refresh, and let the answer show the address the server sees


@record
class Backoff:
    """Delays that double from `min_s` up to `max_s`, each shortened by up to `jitter` of it.

    Jitter spreads the retries of many devices that lost the same link at the same moment, so
    they do not hit the registrar together when it comes back; the bound is never exceeded.
    """

    min_s: float
    max_s: float
    jitter: float = 0.5

    def delay(self, failures: int, rand: float) -> float:
        """The wait after `failures` consecutive failures (>= 1); `rand` is uniform in [0, 1)."""
        base: float = min(self.max_s, self.min_s * 2 ** max(0, failures - 1))
        return base * (1.0 - self.jitter * rand)


@record
class Attempt:
    """What the adapter should report about a scheduled REGISTER."""

    failures: int  # consecutive failures so far (0: not after a failure)
    delay_s: float  # from now
    why: str


class Keeper:
    """The registration schedule of one account. Times are `time.monotonic()` seconds."""

    def __init__(
        self,
        backoff: Backoff,
        check_s: float,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.backoff = backoff
        self.check_s = check_s
        self._rand = rand
        self.failures = 0
        self.public: str | None = None  # the address the registrar saw, from the last 2xx
        self.in_flight = False  # a REGISTER of ours (or pjsua's) awaits its answer
        self._due: tuple[float, Action] | None = None

    def started(self) -> None:
        """A REGISTER went out (the first one, or one that `due` asked for)."""
        self.in_flight = True

    def registered(self, now: float, public: str | None) -> str | None:
        """A 2xx arrived. Returns a note when the server now sees a different address."""
        self.in_flight = False
        self.failures = 0
        note = None
        if public and self.public and public != self.public:
            note = f"the server now sees us at {public} (was {self.public})"
        if public:
            self.public = public
        self._schedule_check(now)
        return note

    def failed(self, now: float, why: str) -> Attempt:
        """A REGISTER failed (error response, timeout, transport error): back off and retry."""
        self.in_flight = False
        self.failures += 1
        delay = self.backoff.delay(self.failures, self._rand())
        self._due = (now + delay, Action.REGISTER)
        return Attempt(self.failures, delay, why)

    def link_changed(self, now: float, why: str) -> Attempt:
        """The local address changed or the network came back: register at once.

        The backoff starts over: the failures so far were on the old network.
        """
        self.failures = 0
        self.public = None  # whatever the server sees now is the new truth
        self._due = (now, Action.REGISTER)
        return Attempt(0, 0.0, why)

    def unregistered(self) -> None:
        """We unregistered on purpose (shutdown): nothing more to schedule."""
        self.in_flight = False
        self._due = None

    def due(self, now: float) -> Action | None:
        """The action whose time has come, if any; it is then no longer pending."""
        if self._due is None or now < self._due[0]:
            return None
        action = self._due[1]
        if action is Action.CHECK and self.in_flight:
            # pjsua is refreshing on its own right now; its answer reschedules the check.
            return None
        self._due = None
        return action

    def retry_pending(self) -> bool:
        """A REGISTER is already scheduled (after a failure or a link change)."""
        return self._due is not None and self._due[1] is Action.REGISTER

    def _schedule_check(self, now: float) -> None:
        self._due = (now + self.check_s, Action.CHECK) if self.check_s > 0 else None


_VIA = re.compile(r"^(?:Via|v)\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)


def public_address(response: str) -> str | None:
    """The address the server saw a request come from, from the top Via of its response.

    RFC 3581: `received` holds the source IP when it differs from the Via host, `rport` the
    source port. Without them the server saw what the Via says. Returns "host:port" ("[v6]:port"),
    or None when the response has no usable Via.
    """
    match = _VIA.search(response)
    if match is None:
        return None
    via = match.group(1).split(",")[0].strip()
    parts = via.split(";")
    sent_by = parts[0].split()[-1] if parts[0].split() else ""
    params = {}
    for part in parts[1:]:
        key, _, value = part.strip().partition("=")
        params[key.lower()] = value.strip()
    host, port = _split_sent_by(sent_by)
    host = params.get("received") or host
    rport = params.get("rport")
    if rport and rport.isdigit():
        port = rport
    if not host:
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port or '5060'}"


def _split_sent_by(sent_by: str) -> tuple[str, str]:
    if sent_by.startswith("["):
        host, _, rest = sent_by.partition("]")
        return host + "]", rest.removeprefix(":")
    host, _, port = sent_by.partition(":")
    return host, port
