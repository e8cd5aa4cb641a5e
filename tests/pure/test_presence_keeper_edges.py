"""The presence keeper's edges (agent.core.presence_keeper): what Home Assistant sees of the
inputs (retained state, live events), watched contacts on `B/buddy/<id>/state`, who may
watch, a reload's template and watchers, and what a shutdown leaves behind.

Oracles: the README's MQTT topic table (`B/input/<name>/state` retained, `.../event` never
retained, `B/buddy/<id>/state` with a lower-case subscription) and its presence section.
"""

from __future__ import annotations

import json

from agent.config.load import parse_config
from agent.core.ports import BuddyState
from lab.rigs import PRESENCE_CONFIG, PresenceRig

B = "sipagent/porch"
WATCH = '[presence.watch]\nalice = "sip:alice@127.0.0.1"\nbob = "sip:bob@127.0.0.1"'


def published(rig: PresenceRig, topic: str) -> list[tuple[str, bool]]:
    return [(p, r) for t, p, r in rig.mqtt.published if t == f"{B}/{topic}"]


def reload_with(rig: PresenceRig, old: str, new: str) -> None:
    """Reload the rig's presence config (serve mode) with `old` replaced by `new`."""
    text = PRESENCE_CONFIG.format(mode="serve", extra="", sip="").replace(old, new)
    rig.keeper.reconfigure(parse_config(text))


def test_an_input_change_is_retained_state_and_a_live_event() -> None:
    rig = PresenceRig()
    rig.door(True)
    rig.door(False)
    assert published(rig, "input/door/state") == [("ON", True), ("OFF", True)]
    assert published(rig, "input/door/event") == [("ON", False), ("OFF", False)]


def test_an_input_the_config_does_not_name_is_ignored() -> None:
    rig = PresenceRig()
    before = list(rig.mqtt.published)
    rig.keeper.on_input("window", True)
    assert rig.mqtt.published == before


def test_a_door_open_at_start_counts_from_the_start() -> None:
    rig = PresenceRig(door=True)
    assert json.loads(published(rig, "presence/state")[-1][0]) == {
        "status": "busy",
        "note": "door open",
    }
    assert rig.keeper.status_lines()[:2] == [
        "presence busy — door open (serve)",
        "inputs: door open",
    ]


def test_after_a_reconnect_everything_retained_is_announced_again() -> None:
    rig = PresenceRig(extra=WATCH)
    rig.door(True)
    rig.sip.watching["alice"](BuddyState("alice", "sip:alice@127.0.0.1", "away", "", "ACTIVE"))
    rig.mqtt.published.clear()
    rig.keeper.announce()
    assert published(rig, "presence/state") == [
        (json.dumps({"status": "busy", "note": "door open"}), True)
    ]
    assert published(rig, "input/door/state") == [("ON", True)]
    assert published(rig, "input/door/event") == []  # events are never replayed
    assert [r for _, r in published(rig, "buddy/alice/state")] == [True]


def test_a_watched_contact_is_published_and_in_the_status() -> None:
    rig = PresenceRig(extra=WATCH)
    assert rig.keeper.status_lines()[-1] == "contacts: alice unknown, bob unknown"
    alice = BuddyState("alice", "sip:alice@127.0.0.1", "busy", "in a meeting", "ACTIVE")
    rig.sip.watching["alice"](alice)
    rig.sip.watching["bob"](BuddyState("bob", "sip:bob@127.0.0.1", "offline", "", "TERMINATED"))
    payload, retained = published(rig, "buddy/alice/state")[-1]
    assert retained is True
    assert json.loads(payload) == {
        "uri": "sip:alice@127.0.0.1",
        "status": "busy",
        "note": "in a meeting",
        "subscription": "active",
    }
    assert rig.keeper.status_lines()[-1] == "contacts: alice busy — in a meeting, bob offline"
    rig.sip.watching["alice"](alice)  # the same again: published again all the same
    assert len(published(rig, "buddy/alice/state")) == 2


def test_who_may_watch() -> None:
    rig = PresenceRig()  # watchers: the people in access.allow
    assert rig.keeper.authorize_watcher('"O" <sip:owner@127.0.0.1:5060>;tag=1') == (200, "OK")
    assert rig.keeper.authorize_watcher("sip:eve@127.0.0.1") == (403, "Forbidden")
    assert rig.keeper.authorize_watcher("not a uri") == (403, "Forbidden")
    off = PresenceRig(mode="off")
    assert off.keeper.authorize_watcher("sip:owner@127.0.0.1") == (489, "Bad Event")
    listed = PresenceRig(extra='watchers = ["sip:bob@127.0.0.1"]')
    assert listed.keeper.authorize_watcher("sip:bob@127.0.0.1") == (200, "OK")
    assert listed.keeper.authorize_watcher("sip:owner@127.0.0.1") == (403, "Forbidden")


def reload(rig: PresenceRig, extra: str) -> None:
    config = parse_config(PRESENCE_CONFIG.format(mode="serve", extra=extra, sip=""))
    rig.keeper.reconfigure(config)


def test_a_reload_brings_the_new_template_and_watchers() -> None:
    rig = PresenceRig()
    rig.door(True)
    reload(rig, 'watchers = ["sip:bob@127.0.0.1"]')
    assert rig.keeper.authorize_watcher("sip:bob@127.0.0.1") == (200, "OK")
    assert rig.keeper.authorize_watcher("sip:owner@127.0.0.1") == (403, "Forbidden")
    reload_with(rig, 'note = "door {door}"', 'note = "the door is {door}"')
    assert json.loads(published(rig, "presence/state")[-1][0]) == {
        "status": "busy",
        "note": "the door is open",
    }


def test_a_reload_keeps_a_note_someone_wrote() -> None:
    rig = PresenceRig()
    assert rig.keeper.on_mqtt_note("gone fishing") is None
    reload_with(rig, 'note = "door {door}"', 'note = "the door is {door}"')
    assert json.loads(published(rig, "presence/state")[-1][0])["note"] == "gone fishing"


def test_a_reload_brings_new_input_rules() -> None:
    rig = PresenceRig()
    reload_with(rig, 'status = "busy"', 'status = "away"')
    rig.door(True)
    assert json.loads(published(rig, "presence/state")[-1][0])["status"] == "away"


def test_mqtt_status_and_note_refusals_say_why() -> None:
    rig = PresenceRig()
    assert rig.keeper.on_mqtt_status("sleepy")
    assert rig.keeper.on_mqtt_set("")
    assert rig.keeper.on_mqtt_status("away") is None
    assert json.loads(published(rig, "presence/state")[-1][0])["status"] == "away"


def test_a_shutdown_leaves_offline_behind() -> None:
    rig = PresenceRig()
    rig.keeper.close()
    assert rig.sip.closed_with and rig.sip.closed_with[-1] is not None  # serve: a closed PIDF
    assert published(rig, "presence/state")[-1] == (
        json.dumps({"status": "offline", "note": ""}),
        True,
    )
    off = PresenceRig(mode="off")
    off.keeper.close()
    assert off.sip.closed_with == [None]  # off: nothing was ever published over SIP


def test_publish_mode_publishes_again_after_each_registration() -> None:
    rig = PresenceRig(mode="publish", sip='registrar = "sip:127.0.0.1"')
    rig.keeper.on_registered()
    rig.keeper.on_registered()
    assert rig.sip.republished == 2
    serve = PresenceRig()
    serve.keeper.on_registered()
    assert serve.sip.republished == 0


def test_an_output_change_refreshes_a_note_that_names_it() -> None:
    rig = PresenceRig()
    reload_with(rig, 'note = "door {door}"', 'note = "lamp {lamp}"')
    assert json.loads(published(rig, "presence/state")[-1][0])["note"] == "lamp off"
    rig.pins.state["lamp"] = True
    rig.keeper.on_output_changed()
    assert json.loads(published(rig, "presence/state")[-1][0])["note"] == "lamp on"


def test_an_input_rules_note_is_applied_when_it_changes_and_at_start() -> None:
    rig = PresenceRig()
    reload_with(rig, 'status = "busy"', 'status = "busy"\nnote = "someone at the door"')
    rig.door(True)
    assert json.loads(published(rig, "presence/state")[-1][0])["note"] == "someone at the door"
    assert rig.keeper.inputs_now() == {"door": (True, "open")}
    rig.door(False)
    assert rig.keeper.inputs_now() == {"door": (False, "closed")}
    rig.pins.active["door"] = True
    rig.keeper.start()  # a restart with the door open
    assert rig.keeper.current is not None and rig.keeper.current.note == "someone at the door"


def test_a_contacts_state_is_announced_again_as_it_was() -> None:
    rig = PresenceRig(extra=WATCH)
    alice = BuddyState("alice", "sip:alice@127.0.0.1", "away", "lunch", "ACTIVE")
    rig.sip.watching["alice"](alice)
    rig.mqtt.published.clear()
    rig.keeper.announce()
    [(payload, retained)] = published(rig, "buddy/alice/state")
    assert retained and json.loads(payload) == {
        "uri": "sip:alice@127.0.0.1",
        "status": "away",
        "note": "lunch",
        "subscription": "active",
    }
