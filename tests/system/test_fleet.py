"""Fleet: group commands over MQTT, and a small fleet on one Kamailio and one broker."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.events import MqttConnected, MqttMessage
from agent.core.topics import Topics
from lab.configs import agent_toml
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip
from lab.fleet import Fleet
from lab.kamailio import numbered_users
from lab.mqttprobe import MqttProbe
from lab.waiting import wait_until

LAMP = 17
MEMBERS = 5

CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
[access]
allow = ["mqtt:local"]
[mqtt]
host = "localhost"
groups = ["porch-lights", "all"]
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""


# --- the topics and the bridge (pure) ---------------------------------------------------------


def test_group_command_topics_are_subscribed_and_recognised() -> None:
    t = Topics("sipagent/porch", ("porch-lights", "all"), "home/group")
    assert t.subscriptions()[-2:] == ("home/group/porch-lights/command", "home/group/all/command")
    assert t.group_of_command("home/group/all/command") == "all"
    assert t.group_of_command("home/group/other/command") is None
    assert t.group_of_command("sipagent/porch/command") is None
    assert Topics("sipagent/porch").subscriptions() == (
        "sipagent/porch/message/send",
        "sipagent/porch/command",
        "sipagent/porch/output/+/set",
        "sipagent/porch/presence/set",
        "sipagent/porch/presence/status/set",
        "sipagent/porch/presence/note/set",
    )


def test_a_group_command_is_carried_out_and_answered_on_the_own_result_topic(
    tmp_path: Path,
) -> None:
    config = parse_config(CONFIG)
    sip, mqtt, pins = FakeSip(), FakeLink(), FakePins()
    agent = Agent(config, sip, pins, mqtt, FakeNotifier(), outbox=FakeOutbox())
    mqtt.turn_ends = agent.flush
    agent.handle(MqttConnected())
    agent.handle(MqttMessage("sipagent/group/all/command", b"on gate"))
    assert pins.state["gate"] is True
    result = json.loads(mqtt.last("sipagent/porch/command/result"))
    assert result == {"command": "on gate", "ok": True, "result": "ok: gate on", "group": "all"}
    # A group it is not in is none of its business (the broker would not send it anyway).
    agent.handle(MqttMessage("sipagent/group/other/command", b"off gate"))
    assert pins.state["gate"] is True


# --- a real fleet -------------------------------------------------------------------------


def _is_busy(event: dict[str, object]) -> bool:
    return event["basic"] == "open" and event["activity"] == "busy"


def test_a_fleet_registers_obeys_one_group_command_and_shows_its_presence(
    tmp_path: Path, kamailio_factory, mosquitto_factory, peer_factory
) -> None:
    users = {**numbered_users("agent", MEMBERS), "watcher": "watcherpw"}
    server = kamailio_factory(users=users)
    broker = mosquitto_factory()
    with Fleet(tmp_path / "fleet", server, broker, MEMBERS) as fleet:
        fleet.start()
        watcher = peer_factory("watcher", server=server)
        aors = [fleet.aor(i) for i in fleet.members]
        for aor in aors:
            watcher.subscribe(aor)

        def seen(predicate) -> set[str]:  # type: ignore[no-untyped-def]
            return {
                e["uri"] for e in list(watcher.events) if e.get("event") == "buddy" and predicate(e)
            }

        wait_until(
            lambda: seen(lambda e: e["basic"] == "open") >= set(aors),
            15,
            "the watcher to see every member online",
        )

        fleet.probe.publish(fleet.group_command, "on lamp")
        fleet.wait_results("on lamp")
        for i in fleet.members:
            assert fleet.agent(i).pin(LAMP) is True

        fleet.probe.publish(fleet.group_command, "presence busy")
        results = fleet.wait_results("presence busy")
        assert all(json.loads(m.payload)["ok"] for m in results.values())
        wait_until(lambda: seen(_is_busy) >= set(aors), 15, "the watcher to see every member busy")
        # Each member answered each command once: results travel in order through each
        # member's outbox, so a second answer to `on lamp` would have come before this one.
        assert all(len(msgs) == 1 for msgs in fleet.results("on lamp").values())
        assert all(len(msgs) == 1 for msgs in fleet.results("presence busy").values())


def test_group_subscription_is_renewed_after_the_broker_restarts(
    kamailio, mosquitto_factory, agent_factory, device_id
) -> None:
    broker = mosquitto_factory()
    B = f"sipagent/{device_id}"
    agent = agent_factory(
        agent_toml(
            kamailio,
            mosquitto=broker,
            device_id=device_id,
            allow=("mqtt:local",),
            mqtt_options={"groups": ["porch-lights"], "discovery_prefix": ""},
        )
    )
    agent.wait_ready()
    with MqttProbe(broker.host, broker.port, topics=(f"{B}/#",)) as probe:
        probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online", consume=False)
        restarted = time.time()
        broker.restart()
        probe.wait_connected(connects=2)
        # `online` comes after the subscriptions: from then on the group topic is heard. The
        # broker is persistent: its retained `online` of before comes back with the retain flag,
        # the agent's new one (live) without.
        probe.wait_for(
            f"{B}/availability",
            lambda m: m.payload == b"online" and not m.retain and m.received > restarted,
            timeout=15,
        )
        probe.publish("sipagent/group/porch-lights/command", "on lamp")
        result = probe.wait_for(f"{B}/command/result").json()
        assert result == {
            "command": "on lamp",
            "ok": True,
            "result": "ok: lamp on",
            "group": "porch-lights",
        }
        assert agent.pin(LAMP) is True
