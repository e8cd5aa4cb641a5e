"""Home Assistant discovery payloads, checked against HA's documented MQTT discovery schema.

Home Assistant's own validators live in the `homeassistant` package, which needs Python
3.13 in current releases, weighs ~675 MB and cannot import its MQTT platforms outside a
running Home Assistant; the last release for Python 3.11 (2024.3.3) has no MQTT notify. So the
schema below is transcribed from HA's MQTT integration documentation (one page per platform:
switch, light, button, select, text, binary_sensor, sensor, event, notify, device trigger):
required keys, every key allowed, and the values constrained by enumerations. A real Home
Assistant 2024.3.3 takes these payloads in scripts/ha_check.py.
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
    "button": (
        {"command_topic"},
        {"command_template", "device_class", "payload_press", "retain"},
    ),
    "select": (
        {"command_topic", "options"},
        {"command_template", "optimistic", "retain", "state_topic", "value_template"},
    ),
    "text": (
        {"command_topic"},
        {"command_template", "max", "min", "mode", "pattern", "retain", "state_topic",
         "value_template"},
    ),
}  # fmt: skip
# A device trigger is no entity: none of COMMON but `device`, and the origin of any discovery.
TRIGGER_REQUIRED = {"automation_type", "device", "subtype", "topic", "type"}
TRIGGER_OPTIONAL = {"payload", "qos", "encoding", "value_template", "origin"}
ENUMS = {
    "entity_category": {"config", "diagnostic"},
    "state_class": {"measurement", "total", "total_increasing"},
    "on_command_type": {"last", "first", "brightness"},
    "mode": {"text", "password"},
    "automation_type": {"trigger"},
}
TOPIC_KEYS_OUT = ("state_topic", "availability_topic", "json_attributes_topic",
                  "brightness_state_topic", "topic")  # fmt: skip
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
[gpio.inputs.bell]
pin = 22
trigger = true
label = "Doorbell"
"""


def _configs(mqtt_extra: str = "") -> dict[str, dict[str, Any]]:
    config = parse_config(CONFIG.format(mqtt_extra=mqtt_extra))
    return {topic: json.loads(payload) for topic, payload in announcements(config).items()}


def _topics_the_agent_uses() -> tuple[set[str], set[str]]:
    """(topics it publishes, topics it subscribes to) for the config above."""
    t = Topics("sipagent/porch")
    out = {t.availability, t.registration, t.presence_state, t.message_in, t.outbox}
    out |= {t.output_state(n) for n in ("gate", "lamp")} | {t.diagnostics}
    out |= {t.input_state(n) for n in ("door", "bell")} | {t.input_event("bell")}
    inbound = set(t.subscriptions()) | {t.output_set(n) for n in ("gate", "lamp")}
    return out, inbound


@pytest.mark.parametrize("mqtt_extra", ["", 'notify_to = "sip:owner@pbx.example.org"'])
def test_every_payload_fits_home_assistants_schema(mqtt_extra: str) -> None:
    published, subscribed = _topics_the_agent_uses()
    configs = _configs(mqtt_extra)
    for topic, payload in configs.items():
        prefix, platform, node, _, last = topic.split("/")
        assert (prefix, node, last) == ("homeassistant", "sipagent_porch", "config")
        if platform == "device_automation":
            required, allowed = TRIGGER_REQUIRED, TRIGGER_REQUIRED | TRIGGER_OPTIONAL
        else:
            required, optional = PLATFORMS[platform]
            allowed = required | optional | COMMON
        assert required <= payload.keys(), (topic, required - payload.keys())
        unknown = payload.keys() - allowed
        assert not unknown, (topic, unknown)
        assert payload["device"].keys() <= DEVICE_KEYS
        assert payload["origin"].keys() <= ORIGIN_KEYS
        for key, allowed in ENUMS.items():
            assert payload.get(key, next(iter(allowed))) in allowed, (topic, key)
        for key in TOPIC_KEYS_OUT:
            assert payload.get(key, t := next(iter(published))) in published, (topic, key, t)
        for key in TOPIC_KEYS_IN:
            assert payload.get(key, next(iter(subscribed))) in subscribed, (topic, key)
        if platform == "device_automation":
            assert payload["device"]["identifiers"] == ["sipagent_porch"]
            continue
        assert payload["availability_topic"] == "sipagent/porch/availability"
        assert payload["unique_id"].startswith("sipagent_porch_")
    entities = [p for t, p in configs.items() if "/device_automation/" not in t]
    assert len({p["unique_id"] for p in entities}) == len(entities)


def test_the_entities_of_an_agent() -> None:
    kinds = {topic.split("/")[1] + ":" + topic.split("/")[3] for topic in _configs()}
    assert kinds == {
        "switch:output_gate",
        "switch:output_lamp",
        "binary_sensor:input_door",
        "binary_sensor:input_bell",
        "device_automation:input_bell_pressed",
        "device_automation:input_bell_released",
        "sensor:registration",
        "sensor:public_address",
        "select:presence",
        "text:presence_note",
        "sensor:outbox",
        "sensor:pjproject",
        "binary_sensor:pjproject_outdated",
        "sensor:last_error",
        "event:message",
    }
    notify = _configs('notify_to = "sip:owner@pbx.example.org"')
    send = notify["homeassistant/notify/sipagent_porch/send/config"]
    assert send["command_topic"] == "sipagent/porch/message/send"
    # Home Assistant renders the template with the notification's text as `value`.
    rendered = send["command_template"].replace("{{ value | tojson }}", json.dumps('say "hi"'))
    assert json.loads(rendered) == {"to": "sip:owner@pbx.example.org", "body": 'say "hi"'}


def test_unique_ids_do_not_depend_on_anything_but_the_device_and_names() -> None:
    first = {t: p.get("unique_id") for t, p in _configs().items()}
    renamed = {t: p.get("unique_id") for t, p in _configs('base_topic = "home/porch"').items()}
    assert first == renamed
    # The ids of earlier versions stay: Home Assistant keys its entity registry on them.
    assert first["homeassistant/switch/sipagent_porch/output_lamp/config"] == (
        "sipagent_porch_output_lamp"
    )
    assert first["homeassistant/binary_sensor/sipagent_porch/input_door/config"] == (
        "sipagent_porch_input_door"
    )


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


def test_an_output_with_a_pulse_is_a_button_that_sends_a_command() -> None:
    config = parse_config(
        CONFIG.format(mqtt_extra="").replace(
            "[gpio.outputs.gate]\n", '[gpio.outputs.gate]\npulse = "2s"\nlabel = "Open gate"\n'
        )
    )
    configs = {t: json.loads(p) for t, p in announcements(config).items()}
    button = configs["homeassistant/button/sipagent_porch/output_gate/config"]
    # B/command: the press passes the access rules of any command from mqtt.identity.
    assert button["command_topic"] == "sipagent/porch/command"
    assert button["payload_press"] == "pulse gate"
    assert button["name"] == "Open gate"
    assert button["unique_id"] == "sipagent_porch_output_gate"
    assert "homeassistant/switch/sipagent_porch/output_gate/config" not in configs
    assert "homeassistant/switch/sipagent_porch/output_lamp/config" in configs


def test_button_false_keeps_a_pulsed_output_a_switch() -> None:
    config = parse_config(
        CONFIG.format(mqtt_extra="").replace(
            "[gpio.outputs.gate]\n", '[gpio.outputs.gate]\npulse = "2s"\nbutton = false\n'
        )
    )
    assert "homeassistant/switch/sipagent_porch/output_gate/config" in announcements(config)


def test_presence_is_a_select_and_its_note_a_text_on_topics_of_their_own() -> None:
    configs = _configs()
    select = configs["homeassistant/select/sipagent_porch/presence/config"]
    assert select["options"] == ["available", "away", "busy", "dnd", "offline"]
    assert select["command_topic"] == "sipagent/porch/presence/status/set"
    assert select["state_topic"] == "sipagent/porch/presence/state"
    text = configs["homeassistant/text/sipagent_porch/presence_note/config"]
    assert text["command_topic"] == "sipagent/porch/presence/note/set"
    assert text["max"] == 200 and text["min"] == 0
    assert "homeassistant/sensor/sipagent_porch/presence/config" not in configs


def test_a_trigger_input_announces_pressed_and_released_on_its_live_event_topic() -> None:
    configs = _configs()
    pressed = configs["homeassistant/device_automation/sipagent_porch/input_bell_pressed/config"]
    assert pressed["topic"] == "sipagent/porch/input/bell/event"
    assert (pressed["type"], pressed["subtype"], pressed["payload"]) == (
        "button_short_press",
        "Doorbell",
        "ON",
    )
    assert "unique_id" not in pressed and "availability_topic" not in pressed
    assert not any("input_door_" in t for t in configs)  # no `trigger = true`


def test_diagnostic_entities_read_the_diagnostics_and_registration_topics() -> None:
    configs = _configs()
    for key in ("registration", "public_address", "outbox", "pjproject", "last_error"):
        sensor = configs[f"homeassistant/sensor/sipagent_porch/{key}/config"]
        assert sensor["entity_category"] == "diagnostic", key
    outdated = configs["homeassistant/binary_sensor/sipagent_porch/pjproject_outdated/config"]
    assert outdated["device_class"] == "update"
    assert outdated["state_topic"] == "sipagent/porch/diagnostics"
