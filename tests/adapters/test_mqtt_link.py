"""The paho adapter's side of hostile MQTT input (agent.adapters.mqtt): bounded before queued."""

from __future__ import annotations

import paho.mqtt.client as paho

from agent.adapters.mqtt import MqttLink
from agent.config.load import parse_config
from agent.core.events import MqttMessage, MqttOversize
from agent.core.mqtt_requests import OUTPUT_SET_BYTES, PayloadBounds
from agent.core.topics import Topics
from agent.inbox import Inbox

B = "sipagent/porch"
CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@127.0.0.1"
[access]
allow = ["sip:owner@127.0.0.1"]
[mqtt]
host = "localhost"
[gpio]
pin_factory = "mock"
[gpio.outputs.lamp]
pin = 18
pwm = true
"""
TOPICS = {
    "command": f"{B}/command",
    "output_set": f"{B}/output/lamp/set",
    "message_send": f"{B}/message/send",
}


def test_the_link_forgets_an_oversize_payload_before_it_is_queued() -> None:
    config = parse_config(CONFIG)
    assert config.mqtt is not None
    inbox = Inbox()
    link = MqttLink(config.mqtt, Topics.of(config.mqtt), inbox, PayloadBounds(1000, 16384))
    for topic, size, retain in [
        (TOPICS["command"], 1000, False),
        (TOPICS["command"], 1001, False),
        (TOPICS["output_set"], 20_000_000, True),
        (TOPICS["message_send"], 16384, False),
    ]:
        message = paho.MQTTMessage(topic=topic.encode())
        message.payload = b"x" * size
        message.retain = retain
        link._on_message(link._client, None, message)
    assert inbox.drain() == [
        MqttMessage(TOPICS["command"], b"x" * 1000),
        MqttOversize(TOPICS["command"], 1001, 1000),
        MqttOversize(TOPICS["output_set"], 20_000_000, OUTPUT_SET_BYTES, retained=True),
        MqttMessage(TOPICS["message_send"], b"x" * 16384),
    ]
