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
from golden import GOLDEN, assert_golden

from agent.config.load import parse_config
from agent.core.discovery import announcements
from agent.core.topics import Topics

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
[access]
allow = ["sip:owner@pbx.example.org"]
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
    assert outdated["json_attributes_topic"] == "sipagent/porch/diagnostics"  # the fixes


# -- Home Assistant's side of each entity, played against the real agent --------------------


class HomeAssistantView:
    """What Home Assistant does with a discovered entity, against a core.Agent with real
    (MockFactory) pins: it publishes to `command_topic`, and reads back the last retained
    payload of `state_topic`, comparing it with `payload_on`/`payload_off` (HA's defaults
    for `state_on`/`state_off`). The oracle is HA's documented behaviour, not the agent's
    own topic names."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from gpiozero import Device

        from agent.adapters.gpio import Outputs
        from agent.adapters.inputs import Inputs
        from agent.core.agent import Agent
        from agent.core.events import InputChanged, MqttConnected
        from agent.core.presence_keeper import PresenceKeeper
        from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakeSip, FakeSipPresence

        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        config = parse_config(CONFIG.format(mqtt_extra=""))
        self.configs = {t: json.loads(p) for t, p in announcements(config).items()}
        self.mqtt = FakeLink()
        self.outputs = Outputs(config.gpio)
        self.changed: list[InputChanged] = []
        self.inputs = Inputs(config.gpio.inputs, self.changed.append)  # type: ignore[arg-type]
        self.factory = Device.pin_factory
        topics = Topics(config.mqtt.base_topic)  # type: ignore[union-attr]
        presence = PresenceKeeper(
            config, FakeSipPresence(), self.inputs, self.outputs, self.mqtt, print, topics
        )
        self.agent = Agent(
            config, FakeSip(), self.outputs, self.mqtt, FakeNotifier(), presence, FakeOutbox()
        )
        self.outputs.set_listener(self.agent.on_output_changed)
        self.mqtt.turn_ends = self.agent.flush
        self.agent.started_sip()
        self.agent.handle(MqttConnected())

    def close(self) -> None:
        self.inputs.close()
        self.outputs.close()

    def entity(self, component: str, key: str) -> dict[str, Any]:
        return self.configs[f"homeassistant/{component}/sipagent_porch/{key}/config"]

    def command(self, entity: dict[str, Any], payload: str) -> None:
        from agent.core.events import MqttMessage

        self.agent.handle(MqttMessage(entity["command_topic"], payload.encode()))

    def drive(self, pin: int, high: bool) -> None:
        mock = self.factory.pin(pin)  # type: ignore[union-attr]
        mock.drive_high() if high else mock.drive_low()
        for event in self.changed:
            self.agent.handle(event)
        self.changed.clear()

    def shown(self, entity: dict[str, Any]) -> str:
        """HA's state of the entity: the last retained payload on its state topic."""
        retained = [p for t, p, r in self.mqtt.published if t == entity["state_topic"] and r]
        assert retained, f"nothing retained on {entity['state_topic']}"
        payload = retained[-1]
        if payload == entity["payload_on"]:
            return "on"
        if payload == entity["payload_off"]:
            return "off"
        return f"unknown ({payload!r})"

    def pin(self, number: int) -> bool:
        return bool(self.factory.pin(number).state)  # type: ignore[union-attr]


@pytest.fixture
def home_assistant(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    view = HomeAssistantView(monkeypatch)
    yield view
    view.close()


@pytest.mark.parametrize(("name", "pin"), [("gate", 17), ("lamp", 18)])
def test_a_switch_shows_what_the_output_does_and_drives_it(home_assistant, name, pin) -> None:  # type: ignore[no-untyped-def]
    ha = home_assistant
    switch = ha.entity("switch", f"output_{name}")
    assert ha.shown(switch) == "off" and ha.pin(pin) is False
    ha.command(switch, switch["payload_on"])  # the user flips the switch on
    assert ha.pin(pin) is True
    assert ha.shown(switch) == "on"
    ha.command(switch, switch["payload_off"])
    assert ha.pin(pin) is False
    assert ha.shown(switch) == "off"
    # A command from elsewhere (SIP, B/command) shows in HA too.
    assert ha.agent.dispatcher.handle("sip:owner@pbx.example.org", f"on {name}").ok
    assert ha.shown(switch) == "on"


@pytest.mark.parametrize(("name", "pin"), [("door", 27), ("bell", 22)])
def test_a_binary_sensor_shows_what_the_input_does(home_assistant, name, pin) -> None:  # type: ignore[no-untyped-def]
    ha = home_assistant
    sensor = ha.entity("binary_sensor", f"input_{name}")
    # Pulled up (the default): the contact pulls the pin low, which is "active".
    assert ha.shown(sensor) == "off"
    ha.drive(pin, high=False)
    assert ha.shown(sensor) == "on"
    ha.drive(pin, high=True)
    assert ha.shown(sensor) == "off"


def test_every_entity_says_the_device_is_available_as_the_agent_announces_it() -> None:
    # README "MQTT topics": B/availability is `online` / `offline` (birth, will and goodbye).
    for topic, payload in _configs().items():
        if "/device_automation/" in topic:
            continue
        assert payload["availability_topic"] == "sipagent/porch/availability", topic
        assert (payload["payload_available"], payload["payload_not_available"]) == (
            "online",
            "offline",
        ), topic


def test_every_discovery_payload_reads_as_written_down() -> None:
    """Buttons with and without a label, a light, a switch, sensors, a trigger, notify: the
    whole of what Home Assistant receives, on a base topic of its own (tests/golden/)."""
    config = parse_config((GOLDEN / "discovery.toml").read_text())
    payloads = announcements(config)
    parsed = {topic: json.loads(payload) for topic, payload in payloads.items()}
    text = json.dumps(parsed, indent=1, sort_keys=True, ensure_ascii=False)
    assert_golden("discovery.json", text.splitlines())
    for topic, payload in payloads.items():  # compact on the wire
        assert payload == json.dumps(parsed[topic], separators=(",", ":")).encode(), topic
