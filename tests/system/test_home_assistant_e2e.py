"""What Home Assistant's entities do to a real agent, over a real Mosquitto.

The payloads are what HA 2024.3.3 publishes for the discovered select, text and button (seen
with a real Home Assistant in scripts/ha_check.py); here the test publishes them itself.
"""

from __future__ import annotations

import json

from lab.configs import BELL_CONFIG, DOOR_CONFIG, agent_toml
from lab.mqttprobe import MqttProbe
from lab.waiting import wait_until


def _agent(agent_factory, mosquitto, device_id: str, access_extra: str = ""):
    config = agent_toml(
        mosquitto=mosquitto,
        device_id=device_id,
        allow=("owner", "mqtt:local"),
        output_extra={"gate": 'pulse = "300ms"\nlabel = "Open gate"'},
        extra=DOOR_CONFIG + BELL_CONFIG,
        access_extra=access_extra,
    )
    agent = agent_factory(config)
    agent.wait_ready()
    with MqttProbe(mosquitto.host, mosquitto.port, [f"sipagent/{device_id}/availability"]) as p:
        p.wait_for(f"sipagent/{device_id}/availability", lambda m: m.text == "online", 15)
    return agent


def _presence(probe, base: str, predicate) -> dict:
    msg = probe.wait_for(f"{base}/presence/state", lambda m: predicate(m.json()), timeout=15)
    return msg.json()


def test_the_presence_select_and_note_text_change_one_part_each(
    agent_factory, mosquitto, probe_factory, device_id
):
    base = f"sipagent/{device_id}"
    probe = probe_factory(f"{base}/#", f"homeassistant/+/sipagent_{device_id}/#")
    _agent(agent_factory, mosquitto, device_id)
    probe.wait_for(f"homeassistant/select/sipagent_{device_id}/presence/config", timeout=15)
    _presence(probe, base, lambda p: p == {"status": "available", "note": "door closed"})

    probe.publish(f"{base}/presence/status/set", "busy")  # the select's option
    _presence(probe, base, lambda p: p == {"status": "busy", "note": "door closed"})
    probe.publish(f"{base}/presence/note/set", "at the {door}")  # the text, as typed
    _presence(probe, base, lambda p: p == {"status": "busy", "note": "at the {door}"})
    probe.publish(f"{base}/presence/status/set", "away")  # the note stays
    _presence(probe, base, lambda p: p == {"status": "away", "note": "at the {door}"})
    probe.publish(f"{base}/presence/note/set", "")  # empty: the configured template again
    _presence(probe, base, lambda p: p == {"status": "away", "note": "door closed"})
    probe.publish(f"{base}/presence/status/set", "sleeping")  # not an option: nothing changes
    probe.publish(f"{base}/presence/note/set", "x" * 201)  # over the text's max: refused
    probe.publish(f"{base}/presence/status/set", "dnd")
    last = _presence(probe, base, lambda p: p["status"] == "dnd")
    assert last == {"status": "dnd", "note": "door closed"}


def test_the_gate_button_pulses_under_the_rules_of_b_command(
    agent_factory, mosquitto, probe_factory, device_id
):
    base = f"sipagent/{device_id}"
    probe = probe_factory(f"{base}/#", f"homeassistant/+/sipagent_{device_id}/#")
    agent = _agent(agent_factory, mosquitto, device_id)
    config = probe.wait_for(
        f"homeassistant/button/sipagent_{device_id}/output_gate/config", timeout=15
    ).json()
    assert config["name"] == "Open gate"
    probe.publish(config["command_topic"], config["payload_press"])  # what HA sends on press
    result = probe.wait_for(f"{base}/command/result", timeout=15).json()
    assert result == {"command": "pulse gate", "ok": True, "result": "ok: gate pulsed 300ms"}
    # On, then off again after the pulse: MockPin's own record of every change.
    wait_until(
        lambda: [level for _, level in agent.pin_history(18)[-2:]] == [1.0, 0.0],
        15,
        "the gate pin on, then off",
    )


def test_the_button_is_refused_where_b_command_would_be(
    agent_factory, mosquitto, probe_factory, device_id
):
    """A gate that needs a one-time code cannot be opened by a button (it carries none)."""
    base = f"sipagent/{device_id}"
    probe = probe_factory(f"{base}/command/result")
    agent = _agent(agent_factory, mosquitto, device_id, access_extra='require_code = ["gate"]')
    probe.publish(f"{base}/command", "pulse gate")
    result = probe.wait_for(f"{base}/command/result", timeout=15).json()
    assert result["ok"] is False
    assert result["result"] == "error: 'gate' needs a one-time code, and none is set up for you"
    assert agent.pin(18) is False


def test_a_doorbell_press_is_a_live_event_and_a_retained_state(
    agent_factory, mosquitto, probe_factory, device_id
):
    base = f"sipagent/{device_id}"
    probe = probe_factory(
        f"{base}/input/#", f"homeassistant/device_automation/sipagent_{device_id}/#"
    )
    agent = _agent(agent_factory, mosquitto, device_id)
    trigger = probe.wait_for(
        f"homeassistant/device_automation/sipagent_{device_id}/input_bell_pressed/config",
        timeout=15,
    ).json()
    assert trigger["topic"] == f"{base}/input/bell/event"
    agent.drive(22, False)  # pulled up: pressing pulls it low
    event = probe.wait_for(f"{base}/input/bell/event", timeout=15)
    assert (event.text, event.retain) == (trigger["payload"], False)
    state = probe.wait_for(f"{base}/input/bell/state", lambda m: m.text == "ON", timeout=15)
    assert state.text == "ON"
    agent.drive(22, True)
    released = probe.wait_for(f"{base}/input/bell/event", timeout=15)
    assert (released.text, released.retain) == ("OFF", False)

    # A subscriber that arrives later (Home Assistant restarting) gets the state, not the press.
    late = probe_factory(f"{base}/input/#")
    state = late.wait_for(f"{base}/input/bell/state", timeout=15)
    assert (state.text, state.retain) == ("OFF", True)
    assert late.messages(f"{base}/input/bell/event") == []


def test_diagnostics_are_retained_with_the_pjproject_version(
    agent_factory, mosquitto, probe_factory, device_id
):
    base = f"sipagent/{device_id}"
    _agent(agent_factory, mosquitto, device_id)
    probe_factory(f"{base}/diagnostics").wait_for(f"{base}/diagnostics", timeout=15)
    # Published: a subscriber that comes later gets it as a retained message.
    diagnostics = probe_factory(f"{base}/diagnostics").wait_for(f"{base}/diagnostics", timeout=15)
    payload = json.loads(diagnostics.payload)
    assert diagnostics.retain
    assert payload["pjproject"].startswith("2.")
    major, minor = (int(n) for n in payload["pjproject"].split(".")[:2])
    # 2.15 and 2.16 lack 2.17's fixes of parts the agent runs (agent.core.capabilities).
    assert payload["pjproject_outdated"] is ((major, minor) < (2, 17))
    details = payload["pjproject_details"]  # the outdated entity's attributes
    assert details["pjproject"] == payload["pjproject"]
    assert details["deferred_message_responses"] is payload["deferred_responses"]
    assert bool(details["missing_security_fixes"]) is payload["pjproject_outdated"]
    if (major, minor) < (2, 16):
        refs = {fix["ref"] for fix in details["missing_security_fixes"]}
        assert {"CVE-2026-28799", "pjproject#4912"} <= refs
    assert payload["last_error"] == ""
