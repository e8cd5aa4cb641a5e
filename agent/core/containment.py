"""Containment: no single event can stop the owner loop (owner thread).

Every inbox event, and the loop's batched work after each turn, runs through `Guard.run`:
an exception is logged with what was being handled (excerpted), counted in agent.core.counters as
`<what>.failed`, and that one event is dropped; the loop goes on with the next. A handler
that keeps failing logs its traceback at once, then at most once a minute with how many
failed since, so a poison repeated a thousand times costs a thousand counts, not a
thousand tracebacks.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from agent.core.counters import Counters
from agent.core.events import Event, MqttMessage, MqttOversize
from agent.core.untrusted import excerpt

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0


class LogThrottle:
    """Says when a repeated log line is due: the first time, then once per `every_s` per key."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s = every_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}  # occurrences not logged since the last line

    def due(self, key: str, n: int = 1) -> int | None:
        """None while quiet; else how many occurrences (n included) the line now covers."""
        now = self.clock()
        last = self._last.get(key)
        self._quiet[key] = self._quiet.get(key, 0) + n
        if last is not None and now - last < self.every_s:
            return None
        self._last[key] = now
        return self._quiet.pop(key)


class Guard:
    """Runs one handler at a time; what it raises is logged, counted and dropped."""

    def __init__(self, counters: Counters, throttle: LogThrottle | None = None) -> None:
        self.counters = counters
        self.throttle = throttle or LogThrottle()

    def run(
        self, what: str, action: Callable[[], object], detail: Callable[[], str] | None = None
    ) -> bool:
        """Call `action`; False if it raised (then it is logged, counted as `<what>.failed`).

        `detail` says what was being handled, for the log; it is asked only on a failure.
        """
        try:
            action()
        # Deliberately broad: whatever one input makes a handler raise (RecursionError,
        # MemoryError, a bug), the loop must survive it. KeyboardInterrupt and SystemExit
        # are not Exceptions and still stop the agent.
        except Exception:
            self.counters.bump(f"{what}.failed")
            failed = self.throttle.due(what)
            if failed is not None:
                since = "" if failed == 1 else f" ({failed} failures since the last report)"
                said = detail() if detail is not None else "-"
                log.exception("%s failed (%s): dropped, the agent goes on%s", what, said, since)
            return False
        return True


_NAMES: dict[type, str] = {}


def event_name(event: Event) -> str:
    """`inbox.mqtt_message` for an MqttMessage: the counter's prefix."""
    kind = type(event)
    name = _NAMES.get(kind)
    if name is None:
        name = _NAMES[kind] = "inbox." + re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()
    return name


def describe(event: Event) -> str:
    """What a log line may say about an event: topics and sizes, payloads only excerpted."""
    if isinstance(event, MqttMessage):
        text = excerpt(event.payload[:400].decode("utf-8", "replace"), 80)
        return f"{excerpt(event.topic)!r}, {len(event.payload)} bytes: {text!r}"
    if isinstance(event, MqttOversize):
        return f"{excerpt(event.topic)!r}, {event.size} bytes"
    return repr(event)
