"""Presence end to end: a door input, watchers in their own processes, Kamailio, Mosquitto."""

from __future__ import annotations

import json

from lab.baresip import BaresipWatcher
from lab.configs import DOOR_CONFIG, agent_toml
from lab.ports import free_port
from lab.waiting import wait_until

DOOR = 27


def _direct_agent(agent_factory, *, extra: str = DOOR_CONFIG, **kwargs):  # type: ignore[no-untyped-def]
    port = free_port()
    config = agent_toml(listen=f"127.0.0.1:{port}", presence="serve", extra=extra, **kwargs)
    agent = agent_factory(config)
    agent.wait_ready()
    return agent, f"sip:agent@127.0.0.1:{port}"


def _is(status: str, note: str):  # type: ignore[no-untyped-def]
    activity = {"busy": "busy", "away": "away"}.get(status, "unknown")
    basic = "closed" if status == "offline" else "open"
    return lambda e: (e["basic"], e["activity"], e["note"]) == (basic, activity, note)


# --- serve mode ---------------------------------------------------------------------------


def test_serve_mode_watcher_sees_busy_door_open_then_closed_on_shutdown(
    agent_factory, peer_factory
):
    agent, target = _direct_agent(agent_factory)
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    owner.subscribe(target)
    owner.wait_buddy(_is("available", "door closed"))
    agent.drive(DOOR, False)
    busy = owner.wait_buddy(_is("busy", "door open"))
    assert busy["status"] == "online" and busy["sub_state"] == "ACTIVE"
    agent.drive(DOOR, True)
    owner.wait_buddy(_is("available", "door closed"))
    agent.terminate()
    assert agent.wait_exit()["code"] == 0
    assert owner.wait_buddy(lambda e: e["basic"] == "closed")["status"] == "offline"


def test_serve_mode_refuses_a_watcher_not_allowed(agent_factory, peer_factory):
    agent, target = _direct_agent(agent_factory)
    eve = peer_factory(uri="sip:eve@127.0.0.1")
    eve.subscribe(target)
    refused = eve.wait_buddy(lambda e: e["sub_state"] in ("TERMINATED", "NULL"))
    assert refused["sub_term_code"] == 403
    assert refused["basic"] == "closed" and refused["note"] != "door closed"
    assert "refused: not in presence.watchers" in agent.log.read_text()


def test_serve_mode_separate_watchers_list(agent_factory, peer_factory):
    extra = DOOR_CONFIG + 'watchers = ["sip:eve@127.0.0.1"]\n'
    _agent, target = _direct_agent(agent_factory, extra=extra)
    eve, owner = peer_factory(uri="sip:eve@127.0.0.1"), peer_factory(uri="sip:owner@127.0.0.1")
    eve.subscribe(target)
    owner.subscribe(target)
    eve.wait_buddy(_is("available", "door closed"))
    refused = owner.wait_buddy(lambda e: e["sub_state"] in ("TERMINATED", "NULL"))
    assert refused["sub_term_code"] == 403  # owner may command, but is no watcher here


def test_twenty_watchers_all_see_the_change(agent_factory, peer_factory):
    names = [f"w{i}" for i in range(4)]
    extra = DOOR_CONFIG + "watchers = [" + ", ".join(f'"sip:{n}@127.0.0.1"' for n in names) + "]\n"
    agent, target = _direct_agent(agent_factory, extra=extra)
    peers = [peer_factory(uri=f"sip:{n}@127.0.0.1") for n in names]
    # Five subscriptions (dialogs) per process: each its own watcher to the agent.
    uris = [f"{target};w={i}" for i in range(5)]
    for peer in peers:
        for uri in uris:
            peer.subscribe(uri)

    def all_show(note: str) -> bool:
        return all(
            any(
                e.get("event") == "buddy" and e["uri"] == uri and e["note"] == note
                for e in list(peer.events)
            )
            for peer in peers
            for uri in uris
        )

    wait_until(lambda: all_show("door closed"), 15, "20 watchers to see door closed")
    agent.drive(DOOR, False)
    wait_until(lambda: all_show("door open"), 15, "20 watchers to see door open")


# --- publish mode through Kamailio -----------------------------------------------------------


def test_publish_mode_watcher_through_kamailio_sees_the_door(
    kamailio_factory, agent_factory, peer_factory
):
    server = kamailio_factory()
    agent = agent_factory(agent_toml(server, presence="publish", extra=DOOR_CONFIG))
    agent.wait_ready()
    watcher = peer_factory("watcher", server=server)
    watcher.subscribe(server.aor("agent"))
    watcher.wait_buddy(_is("available", "door closed"))
    agent.drive(DOOR, False)
    watcher.wait_buddy(_is("busy", "door open"))
    agent.terminate()
    assert agent.wait_exit()["code"] == 0
    assert watcher.wait_buddy(lambda e: e["basic"] == "closed")["status"] == "offline"


def test_presence_is_back_after_kamailio_restarts(kamailio_factory, agent_factory, peer_factory):
    # Over TCP, pjsua sees the server go away and registers again after
    # firstRetryIntervalSec (5 s); each successful registration re-publishes.
    server = kamailio_factory()
    agent = agent_factory(
        agent_toml(server, transport="tcp", presence="publish", extra=DOOR_CONFIG)
    )
    agent.wait_ready()
    watcher = peer_factory("watcher", server=server)
    watcher.subscribe(server.aor("agent"))
    watcher.wait_buddy(_is("available", "door closed"))
    server.stop()
    agent.drive(DOOR, False)  # the door opens while the server is down
    server.start()
    fresh = peer_factory("owner", server=server)
    fresh.subscribe(server.aor("agent"))
    # Generous: 5 s is the usual; a REGISTER that still finds the server down is retried
    # after the registration retry interval (30 s).
    fresh.wait_buddy(_is("busy", "door open"), timeout=60)


# --- MQTT --------------------------------------------------------------------------------------


def test_presence_and_input_state_on_mqtt_and_presence_set(
    mosquitto, agent_factory, probe_factory, peer_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/#")
    agent, target = _direct_agent(agent_factory, mosquitto=mosquitto, device_id=device_id)
    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online", consume=False)
    state = probe.wait_for(f"{B}/presence/state", lambda m: m.json()["note"] == "door closed")
    assert state.json() == {"status": "available", "note": "door closed"}
    agent.drive(DOOR, False)
    probe.wait_for(f"{B}/input/door/state", lambda m: m.payload == b"ON")
    probe.wait_for(f"{B}/presence/state", lambda m: m.json()["status"] == "busy")
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    owner.subscribe(target)
    owner.wait_buddy(_is("busy", "door open"))
    probe.publish(f"{B}/presence/set", json.dumps({"status": "away", "note": "at lunch"}))
    owner.wait_buddy(_is("away", "at lunch"))
    probe.publish(f"{B}/presence/set", "dnd")
    owner.wait_buddy(_is("busy", "door open"))
    probe.wait_for(f"{B}/presence/state", lambda m: m.json()["status"] == "dnd")
    retained = probe_factory(f"{B}/presence/state").wait_for(f"{B}/presence/state")
    assert retained.retain and retained.json() == {"status": "dnd", "note": "door open"}
    retained_input = probe_factory(f"{B}/input/+/state").wait_for(f"{B}/input/door/state")
    assert retained_input.retain and retained_input.payload == b"ON"


def test_watched_contact_reaches_mqtt_and_status(
    kamailio, mosquitto, agent_factory, probe_factory, peer_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/buddy/#")
    # A user of its own: presentities in the session Kamailio outlive a test.
    contact = peer_factory("watcher38", publish=True)
    contact.set_presence("busy", "in a meeting")
    extra = f'[presence.watch]\nbob = "{kamailio.aor("watcher38")}"\n'
    agent = agent_factory(
        agent_toml(kamailio, mosquitto=mosquitto, device_id=device_id, extra=extra)
    )
    agent.wait_ready()
    msg = probe.wait_for(f"{B}/buddy/bob/state", lambda m: m.json()["status"] == "busy")
    assert msg.json()["note"] == "in a meeting"
    assert msg.json()["uri"] == kamailio.aor("watcher38")
    contact.set_presence("available", "back")
    probe.wait_for(f"{B}/buddy/bob/state", lambda m: m.json()["note"] == "back")
    retained = probe_factory(f"{B}/buddy/+/state").wait_for(f"{B}/buddy/bob/state")
    assert retained.retain and retained.json()["status"] == "available"
    owner = peer_factory("owner")
    owner.send(kamailio.aor("agent"), "status")
    assert "contacts: bob available — back" in owner.wait_message()["body"]


# --- baresip as the watcher --------------------------------------------------------------------


def test_baresip_watcher_sees_the_door_make_us_busy(agent_factory, tmp_path):
    extra = DOOR_CONFIG + 'watchers = ["sip:bs@127.0.0.1"]\n'
    agent, target = _direct_agent(agent_factory, extra=extra)
    watcher = BaresipWatcher(tmp_path / "baresip", "sip:bs@127.0.0.1", [target])
    try:
        # baresip prints changes but not the first state: wait until we accepted it (our
        # first NOTIFY goes out right then), then change.
        wait_until(
            lambda: "presence watcher sip:bs@127.0.0.1 accepted" in agent.log.read_text(),
            10,
            "the agent to accept baresip's SUBSCRIBE",
        )
        agent.drive(DOOR, False)
        watcher.wait_status(target, "Busy")
        agent.terminate()
        assert agent.wait_exit()["code"] == 0
        watcher.wait_status(target, "Offline")
    finally:
        watcher.close()


def test_presence_command_over_sip_changes_what_watchers_see(agent_factory, peer_factory):
    _agent, target = _direct_agent(agent_factory)
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    owner.subscribe(target)
    owner.wait_buddy(_is("available", "door closed"))
    owner.send(target, "presence away gone fishing")
    assert owner.wait_message()["body"] == "ok: presence away — gone fishing"
    owner.wait_buddy(_is("away", "gone fishing"))
    owner.send(target, "presence busy")  # no note: back to the template
    assert owner.wait_message()["body"] == "ok: presence busy — door closed"
    owner.wait_buddy(_is("busy", "door closed"))
