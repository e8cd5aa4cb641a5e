"""Home Assistant discovery payloads, checked against HA's documented MQTT discovery schema.

Home Assistant's own validators live in the `homeassistant` package, which needs Python
3.13 in current releases, weighs ~300 MB and cannot import its MQTT platforms outside a
running Home Assistant; the last release for Python 3.11 (2023.12) has no MQTT notify.
So the schema below is transcribed from HA's MQTT integration documentation (one page per
platform: switch, light, binary_sensor, sensor, event, notify): required keys, every key
allowed, and the values constrained by enumerations.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.config import parse_config
from agent.discovery import announcements
from agent.topics import Topics

# Keys every MQTT entity accepts (the "entity" and "availability" sections of the docs).
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id",
    "default_entity_id", "origin", "payload_available", "payload_not_available", "platform",
    "qos", "unique_id",
}  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}

# platform: (required keys, further allowed keys)
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {
    "switch": (
        {"command_topic"},
        {"command_template", "device_class", "optimistic", "payload_off", "payload_on",
         "retain", "state_off", "state_on", "state_topic", "value_template"},
    ),
    "light": (
        {"command_topic"},
        {"brightness_command_template", "brightness_command_topic", "brightness_scale",
         "brightness_state_topic", "brightness_value_template", "on_command_type",
         "optimistic", "payload_off", "payload_on", "retain", "schema", "state_topic",
         "state_value_template"},
    ),
    "binary_sensor": (
        {"state_topic"},
        {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
         "payload_on", "value_template"},
    ),
    "sensor": (
        {"state_topic"},
        {"device_class", "expire_after", "force_update", "last_reset_value_template",
         "options", "suggested_display_precision", "state_class", "unit_of_measurement",
         "value_template"},
    ),
    "event": ({"state_topic", "event_types"}, {"device_class", "value_template"}),
    "notify": ({"command_topic"}, {"command_template", "retain"}),
}  # fmt: skip
ENUMS = {
    "entity_category": {"config", "diagnostic"},
    "state_class": {"measurement", "total", "total_increasing"},
    "on_command_type": {"last", "first", "brightness"},
}
TOPIC_KEYS_OUT = ("state_topic", "availability_topic", "json_attributes_topic",
                  "brightness_state_topic")  # fmt: skip
TOPIC_KEYS_IN = ("command_topic", "brightness_command_topic")

CONFIG = """
[device]
id = "porch"
name = "Porch"
[sip]
uri = "sip:porch@pbx.example.org"
[mqtt]
host = "localhost"
{mqtt_extra}
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.lamp]
pin = 18
[gpio.inputs.door]
pin = 27
"""


def _configs(mqtt_extra: str = "") -> dict[str, dict[str, Any]]:
    config = parse_config(CONFIG.format(mqtt_extra=mqtt_extra))
    return {topic: json.loads(payload) for topic, payload in announcements(config).items()}


def _topics_the_agent_uses() -> tuple[set[str], set[str]]:
    """(topics it publishes, topics it subscribes to) for the config above."""
    t = Topics("sipagent/porch")
    out = {t.availability, t.registration, t.presence_state, t.message_in, t.outbox}
    out |= {t.output_state(n) for n in ("gate", "lamp")} | {t.input_state("door")}
    inbound = {t.message_send, t.command} | {t.output_set(n) for n in ("gate", "lamp")}
    return out, inbound


@pytest.mark.parametrize("mqtt_extra", ["", 'notify_to = "sip:owner@pbx.example.org"'])
def test_every_payload_fits_home_assistants_schema(mqtt_extra: str) -> None:
    published, subscribed = _topics_the_agent_uses()
    configs = _configs(mqtt_extra)
    for topic, payload in configs.items():
        prefix, platform, node, _, last = topic.split("/")
        assert (prefix, node, last) == ("homeassistant", "sipagent_porch", "config")
        required, optional = PLATFORMS[platform]
        assert required <= payload.keys(), (topic, required - payload.keys())
        unknown = payload.keys() - required - optional - COMMON
        assert not unknown, (topic, unknown)
        assert payload["device"].keys() <= DEVICE_KEYS
        assert payload["origin"].keys() <= ORIGIN_KEYS
        for key, allowed in ENUMS.items():
            assert payload.get(key, next(iter(allowed))) in allowed, (topic, key)
        for key in TOPIC_KEYS_OUT:
            assert payload.get(key, t := next(iter(published))) in published, (topic, key, t)
        for key in TOPIC_KEYS_IN:
            assert payload.get(key, next(iter(subscribed))) in subscribed, (topic, key)
        assert payload["availability_topic"] == "sipagent/porch/availability"
        assert payload["unique_id"].startswith("sipagent_porch_")
    assert len({p["unique_id"] for p in configs.values()}) == len(configs)


def test_the_entities_of_an_agent() -> None:
    kinds = {topic.split("/")[1] + ":" + topic.split("/")[3] for topic in _configs()}
    assert kinds == {
        "switch:output_gate",
        "switch:output_lamp",
        "binary_sensor:input_door",
        "sensor:registration",
        "sensor:presence",
        "sensor:outbox",
        "event:message",
    }
    notify = _configs('notify_to = "sip:owner@pbx.example.org"')
    send = notify["homeassistant/notify/sipagent_porch/send/config"]
    assert send["command_topic"] == "sipagent/porch/message/send"
    # Home Assistant renders the template with the notification's text as `value`.
    rendered = send["command_template"].replace("{{ value | tojson }}", json.dumps('say "hi"'))
    assert json.loads(rendered) == {"to": "sip:owner@pbx.example.org", "body": 'say "hi"'}


def test_unique_ids_do_not_depend_on_anything_but_the_device_and_names() -> None:
    first = {t: p["unique_id"] for t, p in _configs().items()}
    renamed = {t: p["unique_id"] for t, p in _configs('base_topic = "home/porch"').items()}
    assert first == renamed


def test_a_pwm_output_is_a_light() -> None:
    config = parse_config(
        CONFIG.format(mqtt_extra="").replace(
            "[gpio.outputs.lamp]\n", "[gpio.outputs.lamp]\npwm = true\n"
        )
    )
    configs = announcements(config)
    light = json.loads(configs["homeassistant/light/sipagent_porch/output_lamp/config"])
    assert light["brightness_scale"] == 100
    assert light["brightness_command_template"] == '{"level": {{ value }}}'
    assert light["brightness_value_template"] == "{{ value_json.level }}"
    assert light["state_value_template"] == "{{ value_json.state }}"
    assert "homeassistant/switch/sipagent_porch/output_gate/config" in configs


def test_the_event_template_maps_a_record_to_an_event_type() -> None:
    event = _configs()["homeassistant/event/sipagent_porch/message/config"]
    assert set(event["event_types"]) == {"message", "command"}
    assert "value_json['from']" in event["value_template"]
