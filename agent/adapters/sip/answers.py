"""How a received MESSAGE is answered: by pjsua at once (2.15), or by the agent (2.16+).

pjsua 2.15 sends 200 OK before `onInstantMessage` runs, so a crash between its 200 and the
outbox's commit loses that one message. pjproject 2.16 added deferred responses
(pjproject#4598): with `sipConfig.autoRespondSipMessage = False` the callback keeps the
request's `DeferredResponse` and the application answers with `Account.sendResponse`. The
agent then answers once it knows the message's fate (agent.core): 200 when it is stored (or,
without an outbox, handed to the dispatcher), 500 when it cannot be stored, so the sender
tries again, and 503 past the SIP stack's bound (agent.core.sipload).

What this module guarantees, on the owner thread (docs/pjsip.md):
- every held request is answered exactly once (pjsua2 raises Error 70013 on a second answer);
- by the end of its callback: one the listener left unanswered gets 200 if the listener
  returned, 500 if it raised;
- nothing of pjsua2's outlives the answer, and `close()` answers and drops whatever is still
  held before `libDestroy()`: a DeferredResponse alive after it aborts the process.

Each MESSAGE is answered through the account it came in on (`[[sip.accounts]]`): the one
whose `onInstantMessage` holds it.

Only the binding's narrow surface is used (`DeferredResponse`, `SendResponseParam`, `Error`,
`Account.sendResponse`), so the logic is tested against a fake of it (lab/fakepj.py,
tests/adapters/test_answers.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Protocol

from agent.core.ports import OK

log = logging.getLogger(__name__)

FAILED = (500, "Server Internal Error")
SHUTTING_DOWN = (503, "Shutting Down")
OVERLOADED = (503, "Overloaded")  # pjsua2 cannot add Retry-After; the sender retries later


class Responder(Protocol):
    """pjsua2's Account, as far as answering goes."""

    def sendResponse(self, prm: Any) -> None: ...  # pjsua2's name


class Answers:
    """The MESSAGEs received and not yet answered, and the rules for answering them."""

    def __init__(
        self, pj: ModuleType, deferred: bool, count: Callable[[str], None] = lambda _: None
    ) -> None:
        self._pj = pj
        self.deferred = deferred  # False: pjsua already answered 200 (2.15)
        self._count = count
        self.refusing = False  # set by agent.core.sipload past its bound (deferred answers only)
        # message id -> (SendResponseParam, which owns the clone; the account it came in on)
        self._held: dict[str, tuple[Any, Responder | None]] = {}

    @property
    def pending(self) -> int:
        return len(self._held)

    def configure(self, sip_config: Any) -> None:
        """Turn pjsua's automatic 200 off for the account (AccountSipConfig), where it can."""
        if self.deferred:
            sip_config.autoRespondSipMessage = False

    @contextmanager
    def held(self, key: str, prm: Any, account: Responder | None) -> Iterator[bool]:
        """Around the handling of one MESSAGE (inside `onInstantMessage` of `account`).

        Yields False when the MESSAGE was refused (503) and must not be handled.
        """
        self._hold(key, prm, account)
        if self.refusing and key in self._held:
            self.answer(key, *OVERLOADED)
            yield False
            return
        try:
            yield True
        except BaseException:
            self.answer(key, *FAILED)
            raise
        self.answer(key, *OK)  # no-op when the listener answered already

    def _hold(self, key: str, prm: Any, account: Responder | None) -> None:
        if not self.deferred:
            return
        pj = self._pj
        try:
            param = pj.SendResponseParam()
            # The DeferredResponse clones the request; the assignment copies it into the
            # parameter, and the temporary goes at once: one object to answer and drop.
            param.deferredResponse = pj.DeferredResponse(prm)
        except pj.Error as err:
            # pjsua created a transaction for it; nothing can answer it now (out of memory).
            self._count("sip.message.unanswerable")
            log.error("MESSAGE %s cannot be answered by the agent: %s", key, err.info())
            return
        self._held[key] = (param, account)

    def answer(self, key: str, code: int, reason: str) -> bool:
        """Answer a held MESSAGE now; False if pjsua did already, or it was answered."""
        param, account = self._held.pop(key, (None, None))
        if param is None:
            return False
        param.code = code
        param.reason = reason
        try:
            if account is None:
                raise RuntimeError("no account to answer through")
            account.sendResponse(param)
        except (self._pj.Error, RuntimeError) as err:
            self._count("sip.message.answer_failed")
            text = err.info() if isinstance(err, self._pj.Error) else str(err)
            log.warning("MESSAGE %s: answering %d failed: %s", key, code, text)
            return False
        finally:
            del param, account  # the copy of the request goes now, not at the next collection
        if code >= 300:
            # A refusal (500: not kept, 503: overloaded or stopping): `status` groups it so.
            self._count(f"sip.message.answered_{code}.refused")
        return True

    def close(self) -> None:
        """Before libDestroy: answer whatever is still held (503), and keep nothing."""
        for key in list(self._held):
            self.answer(key, *SHUTTING_DOWN)
        self._held.clear()
