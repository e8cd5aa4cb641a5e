"""Fleet: group commands over MQTT, and a small fleet on one Kamailio and one broker."""

from __future__ import annotations

import json
from pathlib import Path

from lab.fleet import Fleet
from lab.kamailio import numbered_users
from lab.waiting import wait_until
from test_core import FakeMqtt, FakePins, FakeSip

from agent.config import parse_config
from agent.core import Agent
from agent.events import MqttConnected, MqttMessage
from agent.outbox import Outbox
from agent.service import Notifier
from agent.topics import Topics

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
    )


def test_a_group_command_is_carried_out_and_answered_on_the_own_result_topic(
    tmp_path: Path,
) -> None:
    config = parse_config(CONFIG)
    sip, mqtt, pins = FakeSip(), FakeMqtt(), FakePins()
    agent = Agent(config, sip, pins, mqtt, Notifier(), outbox=Outbox(str(tmp_path / "o.db")))
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
