"""Poison on every MQTT topic the agent hears: a private Mosquitto, the agent in its own process.

After every attack the agent must be sound (`assert_sound`): the process is alive, the owner's
`status` is answered over SIP and over MQTT, no output moved but by valid commands, and a
MESSAGE answered 200 still reaches `B/message/in`. (The SIP side of issue 13 has the same
property in its own suite; this module keeps a small one of its own until they are merged.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.agentproc import AgentProcess
from lab.configs import agent_toml
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe
from lab.peer import Peer
from lab.ports import free_port

LAMP, GATE, DIMMER = 17, 18, 19
OUTPUTS = {"lamp": LAMP, "gate": GATE, "dimmer": DIMMER}
NINES = "9" * 5000


@dataclass
class Rig:
    agent: AgentProcess
    probe: MqttProbe
    owner: Peer
    base: str  # B
    group: str  # the group command topic
    target: str  # the agent's SIP URI
    start: Callable[[], AgentProcess]

    def topic(self, kind: str) -> str:
        return {
            "command": f"{self.base}/command",
            "group": self.group,
            "gate": f"{self.base}/output/gate/set",
            "dimmer": f"{self.base}/output/dimmer/set",
            "presence": f"{self.base}/presence/set",
            "presence_status": f"{self.base}/presence/status/set",
            "presence_note": f"{self.base}/presence/note/set",
            "send": f"{self.base}/message/send",
            "ha": "homeassistant/status",
        }[kind]

    def histories(self) -> dict[int, list[float]]:
        return {pin: [v for _, v in self.agent.pin_history(pin)] for pin in OUTPUTS.values()}


@pytest.fixture
def rig(mosquitto_factory, agent_factory, probe_factory, peer_factory, device_id) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    # A private broker: poison retained on homeassistant/status must not reach other tests.
    broker = mosquitto_factory()
    port = free_port()
    config = agent_toml(
        listen=f"127.0.0.1:{port}",
        mosquitto=broker,
        device_id=device_id,
        presence="serve",
        outputs=OUTPUTS,
        output_extra={"dimmer": "pwm = true"},
        allow=("owner", "mqtt:local"),
        # Room for 5000-digit numbers to reach the parsers, and for the test's own commands.
        access_extra="max_message_bytes = 65536\nrate_burst = 1000\nrate_per_minute = 6000",
        mqtt_options={"groups": [device_id]},
    )
    base = f"sipagent/{device_id}"

    def start() -> AgentProcess:
        agent = agent_factory(config)
        agent.wait_ready()
        return agent

    probe = MqttProbe(broker.host, broker.port, topics=[f"{base}/#"])
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    try:
        yield Rig(
            None,  # type: ignore[arg-type]
            probe,
            owner,
            base,
            f"sipagent/group/{device_id}/command",
            f"sip:agent@127.0.0.1:{port}",
            start,
        )
    finally:
        probe.close()


def online(rig: Rig) -> None:
    rig.probe.wait_for(f"{rig.base}/availability", lambda m: m.payload == b"online", timeout=30)


def assert_sound(rig: Rig, before: dict[int, list[float]]) -> None:
    """Alive, answering, no output moved, and a MESSAGE answered 200 reaches MQTT."""
    assert rig.agent.proc.poll() is None, rig.agent.log_tail()
    rig.owner.send(rig.target, "status")
    reply = rig.owner.wait_message(lambda e: e["body"].startswith("ok: outputs:"), timeout=30)
    assert "lamp off, gate off, dimmer 0%" in reply["body"], reply["body"]
    rig.probe.publish(rig.topic("command"), "status")
    result = rig.probe.wait_for(
        f"{rig.base}/command/result", lambda m: m.json()["command"] == "status", timeout=30
    )
    assert result.json()["ok"] is True
    assert rig.histories() == before, "an output moved"
    marker = f"after the poison {uuid.uuid4()}"
    assert rig.owner.send(rig.target, marker)["code"] == 200
    relayed = rig.probe.wait_for(
        f"{rig.base}/message/in", lambda m: m.json()["body"] == marker, timeout=30
    )
    assert relayed.json()["authorized"] is True
    # A valid command still moves an output, and only that one.
    rig.probe.publish(rig.topic("command"), "on lamp")
    rig.probe.wait_for(
        f"{rig.base}/command/result", lambda m: m.json()["command"] == "on lamp", timeout=30
    )
    after = rig.histories()
    assert after[LAMP] == before[LAMP] + [1.0]
    assert after[GATE] == before[GATE] and after[DIMMER] == before[DIMMER]
    rig.probe.publish(rig.topic("command"), "off lamp")
    rig.probe.wait_for(
        f"{rig.base}/command/result", lambda m: m.json()["command"] == "off lamp", timeout=30
    )


# The inputs that stopped the agent on main, and their kin on every topic.
POISON = [
    ("presence", f'{{"status": {NINES}}}'),
    ("presence", '{"status": "busy", "note": ' + "[" * 2000 + "}"),
    ("presence", "[" * 100_000),  # over presence/set's 2 KiB: dropped unread
    ("presence", "busy bell\x07\x1b[31m"),
    ("presence_status", NINES),
    ("presence_note", "bell\x07\x1b[31m"),
    ("presence_note", "[" * 3000),
    ("dimmer", f'{{"level": {NINES}}}'),
    ("dimmer", '{"level": 1e999}'),
    ("gate", "[" * 250),
    ("send", '{"to": "sip:a@b", "body": ' + "[" * 10_000 + "}"),
    ("send", f'{{"to": "sip:a@b", "body": "x", "id": {NINES}}}'),
    ("command", f"blink lamp 1 1 {NINES}"),
    ("command", f"pulse gate {NINES}ms"),
    ("command", f"set dimmer {NINES}%"),
    ("group", f"blink gate 1 1 {NINES}"),
    ("ha", NINES),
]


def test_retained_poison_and_commands_are_ignored_at_every_start(rig: Rig) -> None:
    # Before the agent ever runs: retained commands that would move the gate, and poison.
    retained = [
        ("command", "on gate"),
        ("group", "pulse gate 30s"),
        ("gate", "ON"),
        ("dimmer", '{"level": 80}'),
        ("presence", '{"status": "busy", "note": "retained"}'),
        ("presence_status", "busy"),
        ("presence_note", "retained note"),
        ("send", json.dumps({"to": "sip:owner@127.0.0.1", "body": "retained send"})),
        *POISON,
    ]
    for kind, payload in retained:
        rig.probe.publish(rig.topic(kind), payload, retain=True)
    for _start in range(2):  # a fresh start, then another: no crash loop
        rig.agent = rig.start()
        online(rig)
        before = rig.histories()
        assert 1.0 not in before[GATE] and set(before[DIMMER]) == {0.0}, before
        assert_sound(rig, before)
        log = rig.agent.log.read_text()
        assert "retained message on" in log and "ignored" in log
        assert "failed (" not in log  # nothing needed the guard: every handler held
        presence = rig.probe.messages(f"{rig.base}/presence/state")[-1]
        assert presence.json()["status"] == "available", presence.json()
        rig.agent.terminate()
        assert rig.agent.wait_exit()["code"] == 0
    results = rig.probe.messages(f"{rig.base}/command/result")
    assert all(m.json()["command"] in ("status", "on lamp", "off lamp") for m in results)
    sent = rig.probe.messages(f"{rig.base}/message/sent")
    assert sent == []  # the retained send was never sent, nor reported as if asked for now
    for kind, _ in retained:
        rig.probe.publish(rig.topic(kind), b"", retain=True)  # leave the broker clean


def test_live_poison_on_every_topic_leaves_the_agent_sound(rig: Rig) -> None:
    rig.agent = rig.start()
    online(rig)
    before = rig.histories()
    for kind, payload in POISON:
        rig.probe.publish(rig.topic(kind), payload)
    # One 20 MB command: answered with an error, not echoed.
    rig.probe.publish(rig.topic("command"), b"on gate " * (20 * 1024 * 1024 // 8), timeout=60)
    oversize = rig.probe.wait_for(
        f"{rig.base}/command/result",
        lambda m: "bytes is longer than" in m.json()["result"],
        timeout=30,
    )
    assert oversize.json() == {
        "command": "",
        "ok": False,
        "result": "error: payload of 20971520 bytes is longer than 65536 bytes",
    }
    blink = rig.probe.wait_for(
        f"{rig.base}/command/result",
        lambda m: m.json()["command"].startswith("blink lamp"),
        timeout=30,
    )
    assert blink.json()["result"] == f"error: count '{'9' * 39}…' is not a number 1..10000"
    assert len(blink.payload) < 400
    refused = rig.probe.wait_for(
        f"{rig.base}/message/sent", lambda m: "nested deeper" in m.json()["reason"], timeout=30
    )
    assert refused.json()["ok"] is False
    assert_sound(rig, before)
    assert "failed (" not in rig.agent.log.read_text()


ALL_KINDS = ("command", "group", "gate", "dimmer", "presence", "presence_status", "presence_note")
ALL_KINDS += ("send", "ha")
TOPIC_KINDS = st.sampled_from(ALL_KINDS)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from([NINES, "\r\nX-Injected: 1", "sip:owner@127.0.0.1", "busy", "gate"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["to", "body", "id", "content_type", "status", "note", "level"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)
PAYLOADS = st.one_of(
    st.binary(max_size=400),
    VALUES.map(lambda v: json.dumps(v).encode()),
    st.lists(st.sampled_from(["blink", "pulse", "lamp", "2s", NINES, "[" * 50, "%"]), max_size=5)
    .map(" ".join)
    .map(str.encode),
    st.integers(1, 40_000).map(lambda n: b"[" * n),
)


def _names_the_gate(kind: str, payload: bytes) -> bool:
    """A live payload that could be a valid command to the gate: not an attack, left out."""
    return kind == "gate" or "gate" in payload.decode("utf-8", "replace").lower()


def test_any_payload_on_any_topic_against_the_running_agent(rig: Rig) -> None:
    rig.agent = rig.start()
    online(rig)
    gate_before = rig.histories()[GATE]

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(kind=TOPIC_KINDS, payload=PAYLOADS, retained=st.booleans())
    def publish(kind: str, payload: bytes, retained: bool) -> None:
        if _names_the_gate(kind, payload) and not retained:
            return  # the gate is the output no payload here may move
        rig.probe.publish(rig.topic(kind), payload, retain=retained)
        assert rig.agent.proc.poll() is None, rig.agent.log_tail()

    publish()
    for kind in ALL_KINDS:
        rig.probe.publish(rig.topic(kind), b"", retain=True)  # clear whatever was retained
    rig.probe.publish(rig.topic("command"), "off lamp")
    rig.probe.publish(rig.topic("presence"), "available")
    rig.probe.wait_for(
        f"{rig.base}/command/result", lambda m: m.json()["command"] == "off lamp", timeout=30
    )
    assert rig.histories()[GATE] == gate_before
    assert "failed (" not in rig.agent.log.read_text()
    # Valid commands among the examples may have moved the lamp and the dimmer: back to off.
    rig.probe.publish(rig.topic("dimmer"), '{"level": 0}')
    rig.probe.publish(rig.topic("command"), "status")
    rig.probe.wait_for(
        f"{rig.base}/command/result", lambda m: m.json()["command"] == "status", timeout=30
    )
    assert_sound(rig, rig.histories())


# --- the README's broker ACL closes the doors ------------------------------------------------


class AclBroker(Mosquitto):
    """The lab's Mosquitto with users and the ACL file given."""

    def __init__(self, workdir: Path, users: dict[str, str], acl: str) -> None:
        super().__init__(workdir, users=users)
        self.acl = acl

    def _config(self) -> str:
        acl_path = self.workdir / "acl"
        acl_path.write_text(self.acl)
        return super()._config() + f"acl_file {acl_path}\n"


def readme_acl() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("one device `porch`, Home Assistant and the agent", 1)[1]
    return block.split("```\n", 2)[1]


def test_the_readme_acl_keeps_other_broker_clients_out(agent_factory, tmp_path, peer_factory):  # type: ignore[no-untyped-def]
    users = {"sipagent": "agentpw", "homeassistant": "hapw", "intruder": "intruderpw"}
    with AclBroker(tmp_path / "broker", users, readme_acl()) as broker:
        port = free_port()
        agent = agent_factory(
            agent_toml(
                listen=f"127.0.0.1:{port}",
                mosquitto=broker,
                device_id="porch",
                outputs=OUTPUTS,
                allow=("owner", "mqtt:local"),
                mqtt_options={"username": "sipagent", "password": "agentpw"},
            )
        )
        agent.wait_ready()
        B = "sipagent/porch"

        def client(user: str) -> MqttProbe:
            return MqttProbe(
                broker.host, broker.port, [f"{B}/#"], username=user, password=users[user]
            )

        home, intruder = client("homeassistant"), client("intruder")
        try:
            home.wait_for(
                f"{B}/availability", lambda m: m.payload == b"online", consume=False, timeout=30
            )
            gate = agent.pin_history(GATE)
            # The intruder's commands and forged state never reach anyone.
            intruder.publish(f"{B}/command", "on gate")
            intruder.publish(f"{B}/output/gate/set", "ON")
            intruder.publish(f"{B}/message/send", '{"to": "sip:owner@127.0.0.1", "body": "x"}')
            intruder.publish(f"{B}/output/gate/state", "ON", retain=True)
            # Home Assistant's command works, and arrives after the intruder's: so they are gone.
            home.publish(f"{B}/command", "on lamp")
            result = home.wait_for(f"{B}/command/result", timeout=30)
            assert result.json()["command"] == "on lamp" and result.json()["ok"]
            assert agent.pin(LAMP) is True and agent.pin_history(GATE) == gate
            assert [m.text for m in home.messages(f"{B}/output/gate/state")] == ["OFF"]
            assert home.messages(f"{B}/message/sent") == []
            # And it reads nothing: not the results, not the messages relayed.
            owner = peer_factory(uri="sip:owner@127.0.0.1")
            assert owner.send(f"sip:agent@127.0.0.1:{port}", "hello")["code"] == 200
            home.wait_for(f"{B}/message/in", lambda m: m.json()["body"] == "hello", timeout=30)
            assert intruder.messages() == []
        finally:
            home.close()
            intruder.close()
