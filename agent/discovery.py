"""Home Assistant MQTT discovery: the config payloads, built from tables and the agent's config.

Pure: `announcements(config)` returns (topic, payload) pairs and does no I/O. The keys are
those of Home Assistant's MQTT discovery documentation (tests/test_discovery.py checks them
against a table of that schema). One device per agent; unique ids depend only on the device
id and the entity's name, so they stay the same across restarts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.config import Config
from agent.topics import Topics

# Home Assistant wants `event_type` in an event's JSON; `message/in` records keep the brief's
# schema, so the template maps one onto the other (`from` is a Jinja keyword: use ['from']).
EVENT_TEMPLATE = (
    "{{ {'event_type': 'command' if value_json.command else 'message', "
    "'id': value_json.id, 'from': value_json['from'], 'body': value_json.body, "
    "'authorized': value_json.authorized} | tojson }}"
)


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity: its component, key and discovery fields."""

    component: str  # Home Assistant platform: switch, light, binary_sensor, sensor, event, notify
    key: str  # unique within the agent, e.g. "output_gate"
    fields: dict[str, Any]


def _switch(t: Topics, name: str) -> dict[str, Any]:
    return {
        "name": name.replace("_", " ").capitalize(),
        "command_topic": t.output_set(name),
        "state_topic": t.output_state(name),
        "payload_on": "ON",
        "payload_off": "OFF",
    }


def _light(t: Topics, name: str) -> dict[str, Any]:
    """A PWM output: state `{"state": "ON", "level": 0-100}`, set `ON`/`OFF`/`{"level": n}`."""
    return {
        "name": name.replace("_", " ").capitalize(),
        "command_topic": t.output_set(name),
        "state_topic": t.output_state(name),
        "state_value_template": "{{ value_json.state }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "brightness_command_topic": t.output_set(name),
        "brightness_command_template": '{"level": {{ value }}}',
        "brightness_state_topic": t.output_state(name),
        "brightness_value_template": "{{ value_json.level }}",
        "brightness_scale": 100,
    }


def _binary_sensor(t: Topics, name: str) -> dict[str, Any]:
    return {
        "name": name.replace("_", " ").capitalize(),
        "state_topic": t.input_state(name),
        "payload_on": "ON",
        "payload_off": "OFF",
    }


# Entities every agent has: (component, key, fields from the topics).
_FIXED: tuple[tuple[str, str, Callable[[Topics], dict[str, Any]]], ...] = (
    (
        "sensor",
        "registration",
        lambda t: {
            "name": "Registration",
            "state_topic": t.registration,
            "value_template": "{{ value_json.state }}",
            "json_attributes_topic": t.registration,
            "entity_category": "diagnostic",
            "icon": "mdi:phone-check",
        },
    ),
    (
        "sensor",
        "presence",
        lambda t: {
            "name": "Presence",
            "state_topic": t.presence_state,
            "value_template": "{{ value_json.status }}",
            "json_attributes_topic": t.presence_state,
            "icon": "mdi:account-badge",
        },
    ),
    (
        "event",
        "message",
        lambda t: {
            "name": "Message",
            "state_topic": t.message_in,
            "event_types": ["message", "command"],
            "value_template": EVENT_TEMPLATE,
            "icon": "mdi:message-text",
        },
    ),
    (
        "sensor",
        "outbox",
        lambda t: {
            "name": "Outbox",
            "state_topic": t.outbox,
            "value_template": "{{ value_json.pending }}",
            "json_attributes_topic": t.outbox,
            "state_class": "measurement",
            "unit_of_measurement": "messages",
            "entity_category": "diagnostic",
            "icon": "mdi:tray-full",
        },
    ),
)


def entities(config: Config) -> list[Entity]:
    """Every entity this agent offers Home Assistant, in a stable order."""
    assert config.mqtt is not None
    t = Topics(config.mqtt.base_topic)
    found = [Entity(component, key, build(t)) for component, key, build in _FIXED]
    for out in config.gpio.outputs:
        # PWM outputs (an `pwm` flag on the output) are dimmable lights, the rest switches.
        if getattr(out, "pwm", False):
            found.append(Entity("light", f"output_{out.name}", _light(t, out.name)))
        else:
            found.append(Entity("switch", f"output_{out.name}", _switch(t, out.name)))
    for inp in config.gpio.inputs:
        found.append(Entity("binary_sensor", f"input_{inp.name}", _binary_sensor(t, inp.name)))
    if config.mqtt.notify_to:
        # The recipient is fixed here; the notification's text becomes the body.
        to = json.dumps(config.mqtt.notify_to)
        template = '{"to": ' + to + ', "body": {{ value | tojson }}}'
        fields = {"name": "Send message", "command_topic": t.message_send}
        found.append(Entity("notify", "send", {**fields, "command_template": template}))
    return found


def announcements(config: Config) -> dict[str, bytes]:
    """Discovery topic -> retained config payload, for every entity of this agent."""
    assert config.mqtt is not None
    prefix, device_id = config.mqtt.discovery_prefix, config.device.id
    t = Topics(config.mqtt.base_topic)
    node = f"sipagent_{device_id}"
    common = {
        "availability_topic": t.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [node],
            "name": config.device.name,
            "manufacturer": "sipagent",
            "model": "SIP presence and messaging agent",
            "sw_version": __version__,
        },
        "origin": {"name": "sipagent", "sw_version": __version__},
    }
    result: dict[str, bytes] = {}
    for entity in entities(config):
        payload = {**entity.fields, "unique_id": f"{node}_{entity.key}", **common}
        topic = f"{prefix}/{entity.component}/{node}/{entity.key}/config"
        result[topic] = json.dumps(payload, separators=(",", ":")).encode()
    return result
