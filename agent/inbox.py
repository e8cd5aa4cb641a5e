"""The owner loop's one thread-safe inbox.

Any thread may `put`; only the owner thread may `drain`. The loop waits inside
pjsua2's `libHandleEvents`, which other threads may not call, so `put` wakes it
through a callable that the SIP adapter provides (a datagram to its own socket).

Messages from broker clients are bounded: any client may publish as fast as the broker
lets it, faster than the owner loop acts. At most `max_pending` of them (and
`MAX_PENDING_BYTES` of payload) wait at once; past that a new one is dropped and counted.
Everything else (acknowledgements the outbox's delivery depends on, connects, inputs, a
stop) is never dropped: those come from our own connection and pins, not from a sender.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from agent.core.events import FROM_BROKER_CLIENTS, Event, MqttMessage

DEFAULT_MAX_PENDING = 5000
# Payload bytes waiting at most: 256 payloads of the largest B/message/send (16 KiB).
MAX_PENDING_BYTES = 4 * 1024 * 1024


class Inbox:
    def __init__(
        self, max_pending: int = DEFAULT_MAX_PENDING, max_pending_bytes: int = MAX_PENDING_BYTES
    ) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._waker: Callable[[], None] | None = None
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._pending = 0  # broker clients' messages queued (under _lock)
        self._pending_bytes = 0
        self._dropped = 0  # since the last take_dropped()

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        self._waker = waker

    def put(self, event: Event) -> None:
        """Post an event from any thread and make sure the owner loop notices it soon."""
        if isinstance(event, FROM_BROKER_CLIENTS):
            size = _size(event)
            with self._lock:
                full = self._pending >= self.max_pending
                if full or self._pending_bytes + size > self.max_pending_bytes:
                    self._dropped += 1
                    return
                self._pending += 1
                self._pending_bytes += size
        self._queue.put(event)
        with self._lock:
            # One wake-up per drain is enough: the loop drains everything it finds.
            if self._wake_pending:
                return
            self._wake_pending = True
        waker = self._waker
        if waker is not None:
            waker()

    def drain(self) -> list[Event]:
        """Take every pending event (owner thread only)."""
        with self._lock:
            self._wake_pending = False
        events: list[Event] = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        taken = [e for e in events if isinstance(e, FROM_BROKER_CLIENTS)]
        if taken:
            with self._lock:
                self._pending -= len(taken)
                self._pending_bytes -= sum(_size(e) for e in taken)
        return events

    def take_dropped(self) -> int:
        """How many broker clients' messages were dropped since the last call."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        return dropped


def _size(event: Event) -> int:
    return len(event.payload) if isinstance(event, MqttMessage) else 0
