"""Home Assistant MQTT discovery: the config payloads, built from tables and the agent's config.

Pure: `announcements(config)` returns (topic, payload) pairs and does no I/O. The keys are
those of Home Assistant's MQTT discovery documentation (tests/adapters/test_discovery.py checks them
against a table of that schema). One device per agent; unique ids depend only on the device
id and the entity's name, so they stay the same across restarts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agent import __version__
from agent.config.model import Config, InputConfig, OutputConfig
from agent.core.presence import MAX_NOTE_CHARS, STATUSES
from agent.core.record import record
from agent.core.topics import Topics

# Home Assistant wants `event_type` in an event's JSON; `message/in` records keep their own
# schema (README "MQTT topics"), so the template maps one onto the other (`from` is a Jinja
# keyword: use ['from']).
EVENT_TEMPLATE = (
    "{{ {'event_type': 'command' if value_json.command else 'message', "
    "'id': value_json.id, 'from': value_json['from'], 'body': value_json.body, "
    "'authorized': value_json.authorized} | tojson }}"
)


@record
class Entity:
    """One Home Assistant entity: its component, key and discovery fields."""

    component: str  # Home Assistant platform: switch, light, button, select, sensor, ...
    key: str  # unique within the agent, e.g. "output_gate"
    fields: dict[str, Any]


def _title(name: str, label: str = "") -> str:
    return label or name.replace("_", " ").capitalize()


def _switch(t: Topics, out: OutputConfig) -> dict[str, Any]:
    return {
        "name": _title(out.name, out.label),
        "command_topic": t.output_set(out.name),
        "state_topic": t.output_state(out.name),
        "payload_on": "ON",
        "payload_off": "OFF",
    }


def _light(t: Topics, out: OutputConfig) -> dict[str, Any]:
    """A PWM output: state `{"state": "ON", "level": 0-100}`, set `ON`/`OFF`/`{"level": n}`."""
    name = out.name
    return {
        "name": _title(name, out.label),
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


def _button(t: Topics, out: OutputConfig) -> dict[str, Any]:
    """An output with a pulse (a gate): pressing it sends `pulse <name>` to `B/command`, so
    the press passes the same access rules as any command (`mqtt.identity`'s rights, codes)."""
    return {
        "name": out.label or f"Pulse {out.name.replace('_', ' ')}",
        "command_topic": t.command,
        "payload_press": f"pulse {out.name}",
        "icon": "mdi:gesture-tap-button",
    }


def _binary_sensor(t: Topics, inp: InputConfig) -> dict[str, Any]:
    return {
        "name": _title(inp.name, inp.label),
        "state_topic": t.input_state(inp.name),
        "payload_on": "ON",
        "payload_off": "OFF",
    }


# An input's device triggers: (key suffix, Home Assistant trigger type, payload on the event
# topic). HA names the standard types in its UI: `"Doorbell" pressed`, `"Doorbell" released`.
TRIGGERS = (
    ("pressed", "button_short_press", "ON"),
    ("released", "button_short_release", "OFF"),
)


def _device_triggers(t: Topics, inp: InputConfig) -> list[Entity]:
    return [
        Entity(
            "device_automation",
            f"input_{inp.name}_{suffix}",
            {
                "automation_type": "trigger",
                "topic": t.input_event(inp.name),
                "type": kind,
                "subtype": _title(inp.name, inp.label),
                "payload": payload,
            },
        )
        for suffix, kind, payload in TRIGGERS
    ]


def _diagnostic_sensor(
    name: str, topic: str, template: str, icon: str, *, attributes: bool = False
) -> dict[str, Any]:
    fields = {
        "name": name,
        "state_topic": topic,
        "value_template": template,
        "entity_category": "diagnostic",
        "icon": icon,
    }
    return {**fields, "json_attributes_topic": topic} if attributes else fields


# Entities every agent has: (component, key, fields from the topics). The keys are the
# unique ids' last part: never rename one (Home Assistant would make a new entity).
_FIXED: tuple[tuple[str, str, Callable[[Topics], dict[str, Any]]], ...] = (
    (
        "sensor",
        "registration",
        lambda t: _diagnostic_sensor(
            "Registration",
            t.registration,
            "{{ value_json.state }}",
            "mdi:phone-check",
            attributes=True,
        ),
    ),
    (
        "sensor",
        "public_address",
        lambda t: _diagnostic_sensor(
            "Public address",
            t.registration,
            "{{ value_json.public | default('unknown') }}",
            "mdi:ip-network",
        ),
    ),
    (
        "select",
        "presence",
        lambda t: {
            "name": "Presence",
            "command_topic": t.presence_status_set,
            "state_topic": t.presence_state,
            "value_template": "{{ value_json.status }}",
            "options": list(STATUSES),
            "icon": "mdi:account-badge",
        },
    ),
    (
        "text",
        "presence_note",
        lambda t: {
            "name": "Presence note",
            "command_topic": t.presence_note_set,
            "state_topic": t.presence_state,
            "value_template": "{{ value_json.note }}",
            "min": 0,
            "max": MAX_NOTE_CHARS,
            "mode": "text",
            "icon": "mdi:note-text",
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
            **_diagnostic_sensor(
                "Outbox", t.outbox, "{{ value_json.pending }}", "mdi:tray-full", attributes=True
            ),
            "state_class": "measurement",
            "unit_of_measurement": "messages",
        },
    ),
    (
        "sensor",
        "pjproject",
        lambda t: _diagnostic_sensor(
            "pjproject", t.diagnostics, "{{ value_json.pjproject }}", "mdi:phone-voip"
        ),
    ),
    (
        "binary_sensor",
        "pjproject_outdated",
        lambda t: {
            "name": "pjproject outdated",
            "state_topic": t.diagnostics,
            "value_template": "{{ 'ON' if value_json.pjproject_outdated else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "update",
            "entity_category": "diagnostic",
            # Why: the security fixes it lacks, its TLS library and that library's age.
            "json_attributes_topic": t.diagnostics,
            "json_attributes_template": "{{ (value_json.pjproject_details or {}) | tojson }}",
        },
    ),
    (
        "sensor",
        "last_error",
        lambda t: {
            **_diagnostic_sensor(
                "Last error",
                t.diagnostics,
                "{{ value_json.last_error or 'none' }}",
                "mdi:alert-circle-outline",
            ),
            "json_attributes_topic": t.diagnostics,
            "json_attributes_template": "{{ {'at': value_json.last_error_at} | tojson }}",
        },
    ),
)


def entities(config: Config) -> list[Entity]:
    """Every entity this agent offers Home Assistant, in a stable order."""
    assert config.mqtt is not None
    t = Topics(config.mqtt.base_topic)
    found = [Entity(component, key, build(t)) for component, key, build in _FIXED]
    for account in config.more_accounts:
        # The first account keeps the entity every agent has (its unique id unchanged); each
        # further one gets its own, named for it.
        topic = t.account_registration(account.name)
        found.append(
            Entity(
                "sensor",
                f"registration_{account.name}",
                _diagnostic_sensor(
                    f"Registration {account.name}",
                    topic,
                    "{{ value_json.state }}",
                    "mdi:phone-check",
                    attributes=True,
                ),
            )
        )
    for out in config.gpio.outputs:
        # A gate is pressed, a lamp switched, a PWM output dimmed.
        if out.button:
            found.append(Entity("button", f"output_{out.name}", _button(t, out)))
        elif out.pwm:
            found.append(Entity("light", f"output_{out.name}", _light(t, out)))
        else:
            found.append(Entity("switch", f"output_{out.name}", _switch(t, out)))
    for inp in config.gpio.inputs:
        found.append(Entity("binary_sensor", f"input_{inp.name}", _binary_sensor(t, inp)))
        if inp.trigger:
            found += _device_triggers(t, inp)
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
        if entity.component == "device_automation":
            # A trigger is no entity: no unique id, no availability; it belongs to the device.
            payload = {**entity.fields, "device": common["device"], "origin": common["origin"]}
        else:
            payload = {**entity.fields, "unique_id": f"{node}_{entity.key}", **common}
        topic = f"{prefix}/{entity.component}/{node}/{entity.key}/config"
        result[topic] = json.dumps(payload, separators=(",", ":")).encode()
    return result
