"""The inbox: a flood from broker clients is bounded; our own connection's events never drop."""

from __future__ import annotations

import threading

from agent.core.events import (
    InputChanged,
    MqttConnected,
    MqttMessage,
    MqttOversize,
    MqttPublished,
    StopRequested,
)
from agent.inbox import Inbox


def test_a_flood_of_messages_is_bounded_and_the_drops_are_counted() -> None:
    inbox = Inbox(max_pending=100)
    for i in range(1000):
        inbox.put(MqttMessage("sipagent/porch/command", b"status"))
        inbox.put(MqttPublished(i))  # the outbox's acknowledgements: never dropped
    events = inbox.drain()
    assert sum(isinstance(e, MqttMessage) for e in events) == 100
    assert [e.mid for e in events if isinstance(e, MqttPublished)] == list(range(1000))
    assert inbox.take_dropped() == 900
    assert inbox.take_dropped() == 0
    # Drained: there is room again.
    inbox.put(MqttMessage("sipagent/porch/command", b"status"))
    assert len(inbox.drain()) == 1 and inbox.take_dropped() == 0


def test_payload_bytes_waiting_are_bounded_too() -> None:
    inbox = Inbox(max_pending=1000, max_pending_bytes=10_000)
    for _ in range(20):
        inbox.put(MqttMessage("sipagent/porch/message/send", b"x" * 1000))
    inbox.put(MqttOversize("sipagent/porch/command", 20_000_000, 1000))  # only its size waits
    assert len(inbox.drain()) == 11
    assert inbox.take_dropped() == 10


def test_only_broker_clients_messages_are_ever_dropped() -> None:
    inbox = Inbox(max_pending=10)
    for _ in range(50):
        inbox.put(MqttMessage("t", b""))
    ours = [MqttConnected(), MqttPublished(1), InputChanged("door", True), StopRequested("x")]
    for event in ours:
        inbox.put(event)
    events = inbox.drain()
    assert all(e in events for e in ours)
    assert inbox.take_dropped() == 40


def test_posting_from_many_threads_keeps_the_bound_and_wakes_the_loop() -> None:
    inbox = Inbox(max_pending=500)
    wakes = threading.Semaphore(0)
    inbox.set_waker(wakes.release)

    def flood() -> None:
        for _ in range(2000):
            inbox.put(MqttMessage("sipagent/porch/presence/set", b"busy"))

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wakes.acquire(timeout=5)
    events = inbox.drain()
    assert len(events) == 500
    assert inbox.take_dropped() == 8000 - 500
