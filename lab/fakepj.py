"""A fake of the part of pjsua2 that answers MESSAGE (pjproject 2.16+), for unit tests.

It behaves as docs/pjsip.md records for a real 2.17 binding: a DeferredResponse is made
from the callback's parameter and clones the request; assigning it into a SendResponseParam
copies it (another clone); answering a request twice raises Error 70013; a clone still alive
when the library is destroyed aborts the process (`destroy()` raises instead). The real
binding runs the same code end to end (tests/system/test_bridge_e2e.py, on a 2.16+ binding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PJ_EINVALIDOP = 70013


class Error(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def info(self) -> str:
        return f"{self.reason} (status={self.status})"


@dataclass
class Library:
    """What the fake "C side" knows: live clones and the transactions' answers."""

    alive: int = 0  # cloned requests not freed yet
    answered: dict[str, list[int]] = field(default_factory=dict)  # transaction -> codes
    fail_clone: bool = False
    fail_send: bool = False

    def destroy(self) -> None:
        if self.alive:
            raise AssertionError(f"{self.alive} DeferredResponse alive at libDestroy: abort")


LIBRARY = Library()


class DeferredResponse:
    def __init__(self, prm: Any = None) -> None:
        self.transaction: str | None = None
        if prm is not None:
            if LIBRARY.fail_clone:
                raise Error(70007, "Unable to clone rx_data")
            self.transaction = prm.transaction
            LIBRARY.alive += 1

    def __del__(self) -> None:
        if self.transaction is not None:
            LIBRARY.alive -= 1


class SendResponseParam:
    def __init__(self) -> None:
        self._deferred = DeferredResponse()
        self.code = 0
        self.reason = ""

    @property
    def deferredResponse(self) -> DeferredResponse:
        return self._deferred

    @deferredResponse.setter
    def deferredResponse(self, value: DeferredResponse) -> None:
        copy = DeferredResponse()  # a copy clones the request again, as SWIG's setter does
        copy.transaction = value.transaction
        if copy.transaction is not None:
            LIBRARY.alive += 1
        self._deferred = copy


class AccountSipConfig:
    def __init__(self) -> None:
        self.autoRespondSipMessage = True


class Account:
    def sendResponse(self, prm: SendResponseParam) -> None:
        tsx = prm.deferredResponse.transaction
        assert tsx is not None, "answering an empty DeferredResponse"
        if LIBRARY.fail_send:
            raise Error(120111, "Unable to send response")
        codes = LIBRARY.answered.setdefault(tsx, [])
        if codes:
            raise Error(PJ_EINVALIDOP, "Invalid operation (transaction already answered)")
        codes.append(prm.code)


@dataclass(frozen=True)
class OnInstantMessageParam:
    transaction: str
