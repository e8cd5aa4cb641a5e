"""The owner loop (agent.loop.Runner) built on a real config: a failing event is dropped, the
next one handled."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.config.load import parse_config
from agent.core.events import Event, MqttMessage, MqttPublished
from agent.loop import Runner


def test_the_owner_loop_drops_a_failing_event_and_handles_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    config = parse_config(
        f"""
[device]
id = "porch"
[sip]
uri = "sip:porch@127.0.0.1"
[mqtt]
host = "localhost"
max_pending = 10
[outbox]
path = "{tmp_path / "outbox.db"}"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""
    )
    runner = Runner(config)  # built, never started: no endpoint, no broker connection
    handled: list[Event] = []

    def handle(event: Event) -> None:
        if isinstance(event, MqttMessage) and event.payload == b"poison":
            raise RecursionError("maximum recursion depth exceeded")
        handled.append(event)

    monkeypatch.setattr(runner.agent, "handle", handle)
    runner.inbox.put(MqttMessage("sipagent/porch/command", b"poison"))
    runner.inbox.put(MqttMessage("sipagent/porch/command", b"status"))
    runner.inbox.put(MqttPublished(7))
    with caplog.at_level(logging.WARNING):
        runner._handle_inbox()
    assert handled == [MqttMessage("sipagent/porch/command", b"status"), MqttPublished(7)]
    assert runner.counters.get("inbox.mqtt_message.failed") == 1
    assert "inbox.mqtt_message failed ('sipagent/porch/command', 6 bytes: 'poison')" in caplog.text
    # A flood past mqtt.max_pending: the rest is dropped, counted, and said once.
    for _ in range(25):
        runner.inbox.put(MqttMessage("sipagent/porch/command", b"status"))
    with caplog.at_level(logging.WARNING):
        runner._handle_inbox()
    assert runner.counters.get("mqtt.inbox.dropped") == 15
    assert "dropped 15 MQTT message(s) from broker clients" in caplog.text
    runner.outputs.close()
    runner.outbox.close()  # type: ignore[union-attr]
