"""Ordered, at-least-once delivery of the outbox to the broker (owner thread only).

Rows leave the outbox in id order through a bounded window of unacknowledged publishes; a
row is deleted only after the broker's PUBACK. When the connection drops, the window is
forgotten (the MQTT link made paho forget it too) and the next connection starts again at
the oldest row still stored, so a subscriber sees every event, in order, possibly more than
once after an outage; each record's stable `id` lets it drop the repeats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agent.core.health import OutboxHealth
from agent.core.ports import Added, EventLink, Outbox

log = logging.getLogger(__name__)

# Unacknowledged publishes at once: enough to keep a loopback or LAN broker busy at thousands
# per second, few enough that an outage repeats little.
WINDOW = 128
STATUS_EVERY_S = 1.0


class Delivery:
    """Moves rows from the outbox to the link, in order, and removes them once acknowledged."""

    def __init__(
        self,
        outbox: Outbox,
        link: EventLink,
        on_status: Callable[[dict[str, object]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self._link = link
        self._on_status = on_status
        self._clock = clock
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox row id
        self._cursor = 0  # the highest row id published on the current connection
        self._session: int | None = None  # the link's connection we deliver on, None: none
        self._acked: list[int] = []
        self._status_dirty = True
        self._status_at = -STATUS_EVERY_S
        self._trouble: str | None = None  # the outbox's, as last reported
        self._progress_at = clock()  # the last sign of delivery: an ack, a connect, a first row

    def add(
        self, topic: str, payload: bytes, dedupe_key: str | None = None, *, memory_ok: bool = True
    ) -> Added:
        """Keep an event (on disk, else in memory: agent.adapters.outbox.store); it goes out with
        `pump`."""
        was_empty = self.outbox.pending == 0
        added = self.outbox.add(topic, payload, dedupe_key, memory_ok=memory_ok)
        if was_empty:
            self._progress_at = self._clock()
        self._status_dirty = True
        return added

    def pump(self) -> None:
        """Publish what the window has room for, oldest first."""
        room = WINDOW - len(self._in_flight)
        if room <= 0 or self._session is None:
            return
        for row in self.outbox.after(self._cursor, room):
            # Pinned to the connection `restart` saw: on a newer one, rows after the cursor
            # would overtake the ones the old connection lost.
            mid = self._link.publish_event(row.topic, row.payload, session=self._session)
            if mid is None:
                return  # disconnected under us: the next connection starts over
            self._in_flight[mid] = row.id
            self._cursor = row.id

    def on_published(self, mid: int) -> None:
        row_id = self._in_flight.pop(mid, None)
        if row_id is not None:
            self._acked.append(row_id)
            self._progress_at = self._clock()

    def restart(self, session: int | None) -> None:
        """The connection changed (None: none now): the unacknowledged go again, oldest first."""
        self._in_flight.clear()
        self._cursor = 0
        self._session = session
        self._progress_at = self._clock()
        self._flush_acked()
        self._status_dirty = True

    def flush(self) -> None:
        """Once per loop turn: delete acknowledged rows, retry a failing disk, report status."""
        self._flush_acked()
        if self.outbox.maintain():
            # Rows held in memory were renumbered after a database that opened late:
            # what was in flight goes again, in the new order.
            self.restart(self._session)
        if self.outbox.trouble != self._trouble:
            self._trouble = self.outbox.trouble
            self._status_dirty = True
            self._status_at = -STATUS_EVERY_S  # said at once, not a second later
        now = self._clock()
        if self._status_dirty and now - self._status_at >= STATUS_EVERY_S:
            # Reported at most once a second: the fill level changes with every message.
            self._status_dirty = False
            self._status_at = now
            self._on_status(self.status())

    def _flush_acked(self) -> None:
        if self._acked:
            # A disk that cannot delete: the outbox (agent.adapters.outbox.store) keeps it.
            self.outbox.remove(self._acked)
            self._acked = []
            self._status_dirty = True

    def health(self) -> OutboxHealth:
        """For the watchdog (agent.core.health): events waiting, and since when none moved.

        Only while connected: a broker that is away is not the agent's sickness, and a
        restart would only interrupt SIP (the outbox keeps everything until it is back).
        """
        box = self.outbox
        stuck = box.pending > 0 and self._session is not None
        return OutboxHealth(
            box.pending, self._progress_at if stuck else None, box.trouble, box.in_memory
        )

    def status(self) -> dict[str, object]:
        """`B/outbox`: fill level, losses, and whether what is kept is on disk."""
        box = self.outbox
        return {
            "pending": box.pending,
            "capacity": box.capacity,
            "when_full": box.when_full,
            "dropped": box.dropped,
            "refused": box.refused,
            "durable": box.durable,
            "trouble": box.trouble,
            "in_memory": box.in_memory,
            "memory_bytes": box.memory_bytes,
            "disk_bytes": box.disk_bytes(),
            "max_disk": box.max_disk,
        }

    def summary(self) -> str:
        box = self.outbox
        lost = box.refused if box.when_full == "refuse" else box.dropped
        verb = "refused" if box.when_full == "refuse" else "dropped"
        text = f"outbox {box.pending}/{box.capacity} pending, {lost} {verb}"
        if not box.durable:
            text += f", NOT DURABLE ({box.trouble or 'catching up'}: {box.in_memory} in memory)"
        return text
