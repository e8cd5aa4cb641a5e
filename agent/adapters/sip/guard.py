"""The guard around every pjsua2 callback: an exception is logged, counted and dropped.

Left alone, SWIG prints a Python exception raised in a callback to stderr and carries on
(tried with 2.15.1: the MESSAGE had already been answered 200, and was lost without a log
line or a count). Through this guard it is logged (the first of a kind with its traceback,
then one line a minute, agent.core.lograte), counted as `sip.callback.<name>.failed`, and the
callback returns `default`. Nothing raised here reaches pjsua2, or stops the owner loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from agent.core.counters import Counters
from agent.core.lograte import LogThrottle

log = logging.getLogger(__name__)
_quiet = LogThrottle(log)

F = TypeVar("F", bound=Callable[..., Any])


class Counted(Protocol):
    @property
    def counters(self) -> Counters: ...


def guarded(name: str, default: Any = None) -> Callable[[F], F]:
    """Decorate a callback method of an object with `counters`."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(self: Counted, *args: Any) -> Any:
            try:
                return fn(self, *args)
            except Exception:
                failed(self.counters, name)
                return default

        return run  # type: ignore[return-value]

    return wrap


def failed(counters: Counters, name: str) -> None:
    """Count and log the exception being handled (call from an `except` block)."""
    counters.bump(f"sip.callback.{name}.failed")
    _quiet.warning(name, "SIP callback %s failed; its event was dropped", name, exc_info=True)
