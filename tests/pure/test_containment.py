"""Containment: a handler that raises is logged, counted and dropped; the loop goes on."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from agent.core.containment import Guard, LogThrottle, describe, event_name
from agent.core.counters import Counters
from agent.core.events import MqttMessage, MqttOversize, MqttPublished
from lab.fakes import Clock


def boom() -> None:
    raise RecursionError("maximum recursion depth exceeded")


def test_a_failing_handler_is_counted_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters()
    guard = Guard(counters)
    with caplog.at_level(logging.ERROR):
        assert guard.run("inbox.mqtt_message", boom, lambda: "'t', 5 bytes") is False
    assert counters.get("inbox.mqtt_message.failed") == 1
    assert "inbox.mqtt_message failed ('t', 5 bytes): dropped, the agent goes on" in caplog.text
    assert "RecursionError" in caplog.text  # the traceback, for whoever mends the bug
    assert guard.run("inbox.mqtt_message", lambda: None) is True


def test_interrupts_are_not_contained() -> None:
    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Guard(Counters()).run("x", stop)


def test_a_handler_failing_in_a_flood_logs_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    counters = Counters()
    guard = Guard(counters, LogThrottle(60.0, clock))
    with caplog.at_level(logging.ERROR):
        for _ in range(1000):
            guard.run("loop.flush", boom)
        clock.now = 61.0
        guard.run("loop.flush", boom)
    assert counters.get("loop.flush.failed") == 1001
    assert len(caplog.records) == 2
    assert "1000 failures since the last report" in caplog.records[1].getMessage()


def test_events_are_named_and_described_without_their_whole_payload() -> None:
    assert event_name(MqttMessage("t", b"")) == "inbox.mqtt_message"
    assert event_name(MqttPublished(3)) == "inbox.mqtt_published"
    text = describe(MqttMessage("sipagent/porch/command", b"on gate " * 3_000_000))
    assert text.startswith("'sipagent/porch/command', 24000000 bytes: 'on gate on gate")
    assert len(text) < 200
    assert describe(MqttOversize("t", 10, 5)) == "'t', 10 bytes"


def test_a_repeated_failure_is_logged_once_a_minute_with_the_count_since(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="agent.core.containment")
    clock = Clock()
    clock.now = 1000.0
    guard = Guard(Counters(), LogThrottle(60.0, clock))
    guard.run("inbox.mqtt_message", boom, lambda: "'sipagent/porch/command', 3 bytes")
    clock.now = 1059.999
    guard.run("inbox.mqtt_message", boom)
    guard.run("loop.flush", boom)  # another handler has its own minute
    clock.now = 1060.0
    guard.run("inbox.mqtt_message", boom)
    assert caplog.messages == [
        "inbox.mqtt_message failed ('sipagent/porch/command', 3 bytes): dropped, the agent goes on",
        "loop.flush failed (-): dropped, the agent goes on",
        "inbox.mqtt_message failed (-): dropped, the agent goes on (2 failures since the last "
        "report)",
    ]
    assert guard.counters.get("inbox.mqtt_message.failed") == 3


def test_event_names_are_stable_counter_prefixes() -> None:
    @dataclass(frozen=True)
    class HomeAssistantBirthSeen:  # a kind no other test has named (the names are cached)
        retained: bool

    first = event_name(HomeAssistantBirthSeen(False))  # type: ignore[arg-type]
    assert first == "inbox.home_assistant_birth_seen"
    assert event_name(HomeAssistantBirthSeen(True)) == first  # type: ignore[arg-type]
    assert event_name(MqttOversize("t", 9, 8, False)) == "inbox.mqtt_oversize"


def test_a_description_is_an_excerpt_of_what_was_received() -> None:
    said = describe(MqttMessage("sipagent/porch/command", b"\xff" + b"x" * 500))
    assert said == "'sipagent/porch/command', 501 bytes: '\ufffd" + "x" * 78 + "…'"
    assert describe(MqttPublished(3)) == "MqttPublished(mid=3)"
