"""One-time codes as a door: each works once (across restarts and every path), and guessing
is stopped by a lockout. Pure; the clock and the store are parameters.

- **Used once, everywhere.** What is remembered is the newest time step accepted per secret
  (not per sender): a code spent over SIP is spent for `B/command` and for every identity
  that shares the secret, and older codes are spent with it. The record is kept by a
  `Store` (agent.adapters.codestore: a file in the state directory), so a restart forgets nothing.
  A code whose use cannot be recorded is refused (fail closed): accepting it would let it
  be replayed after the next restart.
- **Lockout.** After `failures` wrong (or used) codes for a secret within `lockout_s`, every
  code of that secret, good or not, is refused for `lockout_s`; each further lockout before
  a good code doubles it, up to `MAX_LOCKOUT_FACTOR` times. A guesser then gets `failures`
  tries per lockout, whatever the rate limit and however many senders it forges.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from typing import Protocol

from agent.core.record import record
from agent.core.totp import CODE, SKEW_STEPS, STEP_S, hotp

DEFAULT_FAILURES = 5
DEFAULT_LOCKOUT_S = 900.0
MAX_LOCKOUT_FACTOR = 16  # 15 min, 30, 1 h, 2 h, 4 h at most


class Verdict(Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # wrong, expired or already used
    LOCKED = "locked"  # too many wrong codes: none is accepted for a while
    UNRECORDED = "unrecorded"  # right, but its use cannot be recorded: refused


@record
class CodeResult:
    """What checking a one-time code found, and the lockout it may have started."""

    verdict: Verdict
    locked_for_s: float = 0.0  # LOCKED, or WRONG that started a lockout: how long
    lockout_started: bool = False  # this wrong code started a lockout (an alert)
    failures: int = 0  # wrong codes counted in the current window


@record
class SecretState:
    """What is remembered of one secret (by its fingerprint, never the secret)."""

    last_step: int = -1  # newest accepted time step: it and all before it are spent
    failures: int = 0  # wrong codes since `first_failure_at`
    first_failure_at: float = 0.0
    locked_until: float = 0.0  # wall clock
    lockouts: int = 0  # lockouts since the last accepted code (each doubles the next)


class Store(Protocol):
    def load(self) -> tuple[dict[str, SecretState], bool]:
        """The states by fingerprint, and True if the record was damaged (trust no code)."""

    def save(self, states: dict[str, SecretState], *, sync: bool) -> bool:
        """Write the states (`sync`: to stable storage before returning); False if it failed."""


class MemoryStore:
    """A store that forgets at exit: for tests and for an agent without a state directory."""

    def __init__(self) -> None:
        self.states: dict[str, SecretState] = {}

    def load(self) -> tuple[dict[str, SecretState], bool]:
        return dict(self.states), False

    def save(self, states: dict[str, SecretState], *, sync: bool) -> bool:
        self.states = dict(states)
        return True


def fingerprint(key: bytes) -> str:
    """A name for a secret that does not reveal it (the store is a file)."""
    return hashlib.sha256(b"sipagent one-time code secret\0" + key).hexdigest()[:24]


class CodeGuard:
    """Checks one-time codes: once each, per secret, with a lockout after wrong ones."""

    def __init__(
        self,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        *,
        failures: int = DEFAULT_FAILURES,
        lockout_s: float = DEFAULT_LOCKOUT_S,
    ) -> None:
        self._store = store if store is not None else MemoryStore()
        self._clock = clock
        self.max_failures = failures
        self.lockout_s = lockout_s
        self._states, damaged = self._store.load()
        # A damaged record may have held codes used a moment ago: accept none that is
        # valid now, only those that come after (a minute or so).
        self._floor_step = int(clock() // STEP_S) + SKEW_STEPS if damaged else -1

    def check(self, key: bytes, code: str) -> CodeResult:
        """Is `code` a valid, unused code of `key` now? (If so it is now spent.)"""
        now = self._clock()
        name = fingerprint(key)
        state = self._states.get(name, SecretState())
        if now < state.locked_until:
            return CodeResult(Verdict.LOCKED, state.locked_until - now, failures=state.failures)
        step = _matching_step(key, code, now, max(state.last_step, self._floor_step))
        if step is None:
            return self._wrong(name, state, now)
        self._states[name] = SecretState(last_step=step)
        if not self._store.save(self._states, sync=True):
            return CodeResult(Verdict.UNRECORDED)  # spent in memory all the same
        return CodeResult(Verdict.ACCEPTED)

    def _wrong(self, name: str, state: SecretState, now: float) -> CodeResult:
        if now - state.first_failure_at > self.lockout_s:
            state = replace(state, failures=0, first_failure_at=now)
        state = replace(state, failures=state.failures + 1)
        result = CodeResult(Verdict.WRONG, failures=state.failures)
        if state.failures >= self.max_failures:
            factor = min(2**state.lockouts, MAX_LOCKOUT_FACTOR)
            length = self.lockout_s * factor
            state = replace(
                state, failures=0, locked_until=now + length, lockouts=state.lockouts + 1
            )
            result = CodeResult(Verdict.WRONG, length, True, self.max_failures)
        self._states[name] = state
        # Best effort, and no fsync: a wrong code must not cost a flash write (nor time a
        # stranger could tell apart from a refusal of his own).
        self._store.save(self._states, sync=False)
        return result


def _matching_step(key: bytes, code: str, now: float, spent_up_to: int) -> int | None:
    if not CODE.fullmatch(code):
        return None
    now_step = int(now // STEP_S)
    found = None
    for step in range(now_step - SKEW_STEPS, now_step + SKEW_STEPS + 1):
        # Every step is compared (no early exit): the time taken says nothing of the code.
        if hmac.compare_digest(hotp(key, step), code) and step > spent_up_to:
            found = step
    return found
