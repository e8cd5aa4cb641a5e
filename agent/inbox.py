"""The owner loop's one thread-safe inbox.

Any thread may `put`; only the owner thread may `drain`. The loop waits inside
pjsua2's `libHandleEvents`, which other threads may not call, so `put` wakes it
through a callable that the SIP adapter provides (a datagram to its own socket).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from agent.events import Event


class Inbox:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._waker: Callable[[], None] | None = None

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        self._waker = waker

    def put(self, event: Event) -> None:
        """Post an event from any thread and make sure the owner loop notices it soon."""
        self._queue.put(event)
        with self._lock:
            # One wake-up per drain is enough: the loop drains everything it finds.
            if self._wake_pending:
                return
            self._wake_pending = True
        waker = self._waker
        if waker is not None:
            waker()

    def put_from_signal(self, event: Event) -> None:
        """Post from a signal handler: no lock (the interrupted owner thread may hold it);
        SimpleQueue.put is reentrant, and the signal's wakeup fd wakes the loop."""
        self._queue.put(event)

    def drain(self) -> list[Event]:
        """Take every pending event (owner thread only)."""
        with self._lock:
            self._wake_pending = False
        events: list[Event] = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events
