"""The outbox (real SQLite in tmp) and the delivery window over it (the fake link, lab.fakes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from agent.adapters.outbox.store import Outbox
from agent.config.load import parse_config
from agent.config.statedir import default_path
from agent.core.agent import Agent
from agent.core.events import MqttConnected, MqttDisconnected
from agent.core.health import OutboxHealth
from agent.core.registration import RegState
from agent.core.relay import WINDOW, Delivery
from lab.fakes import FakeLink, FakeNotifier, FakePins, FakeSip, message


def _open(tmp_path: Path, **kwargs: object) -> Outbox:
    return Outbox(str(tmp_path / "state" / "outbox.db"), **kwargs)  # type: ignore[arg-type]


def test_rows_come_back_in_order_and_survive_reopening(tmp_path: Path) -> None:
    box = _open(tmp_path)
    ids = [box.add("t", f"m{i}".encode()).id for i in range(5)]
    assert ids == sorted(ids)
    box.remove(ids[:2])
    box.close()
    again = _open(tmp_path)
    assert [r.payload for r in again.after(0, 10)] == [b"m2", b"m3", b"m4"]
    assert again.pending == 3
    # Ids are never reused, even after the newest rows were delivered and deleted.
    again.remove([r.id for r in again.after(0, 10)])
    assert again.add("t", b"next").id == ids[-1] + 1


def test_a_committed_row_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    code = (
        "import os, signal, sys\n"
        "from agent.adapters.outbox.store import Outbox\n"
        "box = Outbox(sys.argv[1])\n"
        "box.add('t', b'kept')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", code, str(db)], env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert [r.payload for r in Outbox(str(db)).after(0, 10)] == [b"kept"]


def test_a_retransmission_is_stored_once_even_after_reopening(tmp_path: Path) -> None:
    box = _open(tmp_path)
    assert box.add("t", b"a", dedupe_key="cid|1 MESSAGE|tag").id is not None
    assert box.add("t", b"a", dedupe_key="cid|1 MESSAGE|tag").duplicate
    box.close()
    again = _open(tmp_path)
    assert again.add("t", b"a", dedupe_key="cid|1 MESSAGE|tag").duplicate
    assert again.add("t", b"b", dedupe_key="cid|2 MESSAGE|tag").id is not None
    assert again.pending == 2


def test_full_drop_oldest_counts_what_it_dropped(tmp_path: Path) -> None:
    box = _open(tmp_path, capacity=3)
    for i in range(5):
        box.add("t", str(i).encode())
    assert [r.payload for r in box.after(0, 10)] == [b"2", b"3", b"4"]
    assert (box.pending, box.dropped) == (3, 2)
    box.close()
    assert _open(tmp_path, capacity=3).dropped == 2  # the counter is persistent


def test_full_refuse_keeps_the_oldest(tmp_path: Path) -> None:
    box = _open(tmp_path, capacity=2, when_full="refuse")
    results = [box.add("t", str(i).encode()) for i in range(4)]
    assert [r.refused for r in results] == [False, False, True, True]
    assert [r.payload for r in box.after(0, 10)] == [b"0", b"1"]
    assert box.refused == 2


def test_an_unusable_path_keeps_events_in_memory_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    box = Outbox(str(tmp_path / "file" / "outbox.db"))
    assert (box.durable, box.trouble) == (False, "not writable")
    added = box.add("t", b"kept", dedupe_key="k")
    assert added.id is not None and not added.durable
    assert box.add("t", b"kept", dedupe_key="k").duplicate
    assert [r.payload for r in box.after(0, 10)] == [b"kept"]
    assert box.add("t", b"not kept", memory_ok=False).id is None  # 2.16+: answer 500


def test_default_path_follows_systemd_state_directory() -> None:
    assert default_path({"STATE_DIRECTORY": "/var/lib/x:/other"}) == "/var/lib/x/outbox.db"


def _delivery(tmp_path: Path, **kwargs: object) -> tuple[Delivery, FakeLink, list[dict]]:
    link, statuses = FakeLink(), []
    box = _open(tmp_path, **kwargs)
    return Delivery(box, link, statuses.append, clock=lambda: 100.0), link, statuses


def test_nothing_is_sent_before_a_connection_and_all_in_order_after(tmp_path: Path) -> None:
    delivery, link, _ = _delivery(tmp_path)
    for i in range(3):
        delivery.add("t", str(i).encode())
        delivery.pump()
    assert link.events == []
    delivery.restart(link.session)
    delivery.pump()
    assert [p for _, _, p in link.events] == [b"0", b"1", b"2"]


def test_rows_leave_only_after_their_puback(tmp_path: Path) -> None:
    delivery, link, statuses = _delivery(tmp_path)
    delivery.restart(link.session)
    for i in range(3):
        delivery.add("t", str(i).encode())
        delivery.pump()
    delivery.on_published(2)
    delivery.flush()
    assert [r.payload for r in delivery.outbox.after(0, 10)] == [b"0", b"2"]
    assert statuses[-1]["pending"] == 2


def test_the_window_bounds_what_is_unacknowledged(tmp_path: Path) -> None:
    delivery, link, _ = _delivery(tmp_path)
    for i in range(WINDOW + 10):
        delivery.add("t", str(i).encode())
    delivery.restart(link.session)
    delivery.pump()
    assert len(link.events) == WINDOW
    delivery.on_published(1)
    delivery.pump()
    assert len(link.events) == WINDOW + 1


def test_after_a_reconnect_the_unacknowledged_go_again_from_the_oldest(tmp_path: Path) -> None:
    delivery, link, _ = _delivery(tmp_path)
    delivery.restart(link.session)
    for i in range(4):
        delivery.add("t", str(i).encode())
        delivery.pump()
    delivery.on_published(1)
    delivery.restart(None)  # disconnected
    link.session = 2
    delivery.add("t", b"4")
    delivery.pump()  # the link is back, but the agent has not seen the Connected event yet
    assert [p for _, _, p in link.events] == [b"0", b"1", b"2", b"3"]
    delivery.restart(link.session)
    delivery.pump()
    assert [p for _, _, p in link.events][4:] == [b"1", b"2", b"3", b"4"]


def test_a_publish_on_an_outdated_connection_is_not_made(tmp_path: Path) -> None:
    delivery, link, _ = _delivery(tmp_path)
    delivery.restart(link.session)
    link.session = 2  # reconnected behind the agent's back
    delivery.add("t", b"x")
    delivery.pump()
    assert link.events == []


def test_status_reports_the_full_policy(tmp_path: Path) -> None:
    delivery, _, statuses = _delivery(tmp_path, capacity=1, when_full="drop_oldest")
    delivery.add("t", b"a")
    delivery.add("t", b"b")
    delivery.flush()
    assert statuses[-1] == {
        "pending": 1,
        "capacity": 1,
        "when_full": "drop_oldest",
        "dropped": 1,
        "refused": 0,
        "durable": True,
        "trouble": None,
        "in_memory": 0,
        "memory_bytes": 0,
        "disk_bytes": statuses[-1]["disk_bytes"],
        "max_disk": 16 * 1024**2,
    }
    assert 0 < statuses[-1]["disk_bytes"] <= 16 * 1024**2
    assert delivery.summary() == "outbox 1/1 pending, 1 dropped"
    assert json.dumps(statuses[-1])


def test_health_says_stuck_only_while_connected_and_not_delivering(tmp_path: Path) -> None:
    link, now = FakeLink(), [100.0]
    delivery = Delivery(_open(tmp_path), link, lambda s: None, clock=lambda: now[0])
    assert delivery.health().stuck_since is None  # empty
    delivery.add("t", b"a")
    assert delivery.health().stuck_since is None  # not connected: the broker is away
    now[0] = 200.0
    delivery.restart(link.session)
    delivery.pump()
    now[0] = 300.0
    assert delivery.health() == OutboxHealth(1, 200.0)  # connected, nothing acknowledged
    delivery.on_published(1)
    delivery.flush()
    assert delivery.health() == OutboxHealth(0, None)


AGENT_CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
[access]
allow = ["sip:owner@pbx.example.org"]
[mqtt]
host = "localhost"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""


def test_an_outbox_that_cannot_store_keeps_the_message_until_it_is_published(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")  # the state directory is a file: nothing can be stored
    mqtt, pins = FakeLink(), FakePins()
    outbox = Outbox(str(tmp_path / "a-file" / "outbox.db"))
    agent = Agent(parse_config(AGENT_CONFIG), FakeSip(), pins, mqtt, FakeNotifier(), None, outbox)
    mqtt.turn_ends = agent.flush
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    agent.handle(MqttConnected())
    mqtt.connected = False
    agent.handle(MqttDisconnected("broker down"))
    agent.on_message(message(body="on gate"))
    agent.flush()
    assert pins.state["gate"] is True
    assert "NOT DURABLE (not writable: 1 in memory)" in "; ".join(agent.status_lines())
    assert not [t for t, _, _ in mqtt.published if t.endswith("message/in")]
    mqtt.connected = True
    agent.handle(MqttConnected())
    record = json.loads(mqtt.last("sipagent/porch/message/in"))
    assert record["command"]["result"] == "ok: gate on"
    status = json.loads(mqtt.last("sipagent/porch/outbox"))
    assert (status["durable"], status["trouble"]) == (False, "not writable")
