"""Presence decisions: the model, note templates, requests, and the keeper with fakes."""

from __future__ import annotations

import json

import pytest

from agent.core.commands import CommandError
from agent.core.events import InputChanged, MqttMessage
from agent.core.ports import BuddyState, SipError
from agent.core.presence import (
    Pidf,
    Presence,
    PresenceError,
    PresenceRequest,
    PresenceState,
    normalize_status,
    parse_request,
    pidf_of,
    render_note,
    retry_delay,
    status_of_pidf,
    template_fields,
)
from agent.core.presence_keeper import CLOSED
from lab.rigs import AgentRig, PresenceRig

# --- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "pidf"),
    [
        ("available", Pidf(True, "unknown", "n")),
        ("away", Pidf(True, "away", "n")),
        ("busy", Pidf(True, "busy", "n")),
        ("dnd", Pidf(True, "busy", "n")),
        ("offline", Pidf(False, "unknown", "n")),
    ],
)
def test_each_status_maps_to_pidf_basic_and_rpid_activity(status: str, pidf: Pidf) -> None:
    assert pidf_of(Presence(status, "n")) == pidf


@pytest.mark.parametrize(
    ("word", "status"),
    [("Busy", "busy"), (" online ", "available"), ("DND", "dnd"), ("closed", "offline")],
)
def test_status_words_are_case_insensitive_with_aliases(word: str, status: str) -> None:
    assert normalize_status(word) == status


def test_unknown_status_says_what_to_use() -> None:
    with pytest.raises(PresenceError, match="unknown status 'sleeping' \\(use one of: available"):
        normalize_status("sleeping")


@pytest.mark.parametrize(
    ("open_", "activity", "status"),
    [
        (None, "unknown", "unknown"),
        (False, "busy", "offline"),
        (True, "busy", "busy"),
        (True, "away", "away"),
        (True, "unknown", "available"),
    ],
)
def test_a_contacts_pidf_reads_as_a_status(open_: bool | None, activity: str, status: str) -> None:
    assert status_of_pidf(open_, activity) == status


@pytest.mark.parametrize(
    ("template", "values", "note"),
    [
        ("door {door}", {"door": "open"}, "door open"),
        ("{door}, lamp {lamp}", {"door": "closed", "lamp": "on"}, "closed, lamp on"),
        ("door {door}", {}, "door {door}"),  # no value: left as written
        ("{{literal}} braces", {}, "{literal} braces"),
        ("plain", {"door": "open"}, "plain"),
    ],
)
def test_note_templates_render_from_device_state(
    template: str, values: dict[str, str], note: str
) -> None:
    assert render_note(template, values) == note


@pytest.mark.parametrize("bad", ["door {", "door {0}", "{door!r}", "{door:>5}", "{}"])
def test_broken_templates_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        template_fields(bad)


@pytest.mark.parametrize(
    ("text", "req"),
    [
        ("busy", PresenceRequest("busy", None)),
        ("  Away   gone fishing ", PresenceRequest("away", "gone fishing")),
        ('{"status": "dnd", "note": "call later"}', PresenceRequest("dnd", "call later")),
        ('{"status": "available"}', PresenceRequest("available", None)),
    ],
)
def test_presence_set_payloads(text: str, req: PresenceRequest) -> None:
    assert parse_request(text) == req


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty presence"),
        ("{nope", "invalid JSON"),
        ('{"note": "x"}', '"status" string'),
        ('{"status": "busy", "note": 3}', '"note" must be a string'),
        ("sleeping", "unknown status"),
        ("busy " + "x" * 201, "note longer than 200"),
    ],
)
def test_bad_presence_set_payloads_say_why(text: str, error: str) -> None:
    with pytest.raises(PresenceError, match=error):
        parse_request(text)


def test_a_person_s_note_is_literal_and_no_note_goes_back_to_the_template() -> None:
    state = PresenceState("available", "door {door}")
    mine = state.with_request(PresenceRequest("busy", "meeting {door}"), "door {door}")
    assert mine.effective({"door": "open"}) == Presence("busy", "meeting {door}")
    back = mine.with_request(PresenceRequest("away", None), "door {door}")
    assert back.effective({"door": "open"}) == Presence("away", "door open")


def test_a_rule_changes_only_what_it_names() -> None:
    state = PresenceState("away", "door {door}")
    assert state.with_rule("busy", None) == PresenceState("busy", "door {door}")
    assert state.with_rule(None, "ring!") == PresenceState("away", "ring!")


def test_presence_describes_itself_like_a_buddy_list() -> None:
    assert Presence("busy", "door open").describe() == "busy — door open"
    assert Presence("away", "").describe() == "away"
    assert json.loads(Presence("busy", "x").as_json()) == {"status": "busy", "note": "x"}


# --- the keeper, with fakes ---------------------------------------------------------------------


def test_start_sends_the_configured_presence_and_retains_it() -> None:
    rig = PresenceRig()
    assert rig.sip.sent == [Pidf(True, "unknown", "door closed")]
    payload, retained = rig.mqtt.last_retained("sipagent/porch/presence/state")
    assert json.loads(payload) == {"status": "available", "note": "door closed"} and retained


def test_door_opening_makes_us_busy_retains_input_and_texts_the_contacts() -> None:
    rig = PresenceRig()
    rig.door(True)
    assert rig.sip.sent[-1] == Pidf(True, "busy", "door open")
    assert rig.mqtt.last_retained("sipagent/porch/input/door/state") == ("ON", True)
    assert rig.messages == [
        ("sip:owner@127.0.0.1", "door open, lamp off"),
        ("sip:bob@127.0.0.1", "door open, lamp off"),
    ]
    rig.door(False)
    assert rig.sip.sent[-1] == Pidf(True, "unknown", "door closed")
    assert len(rig.messages) == 2  # no message configured for closing


def test_an_input_active_at_start_applies_its_rule() -> None:
    rig = PresenceRig(door=True)
    assert rig.sip.sent == [Pidf(True, "busy", "door open")]
    assert rig.messages == []  # nothing happened: the door was already open


def test_the_presence_command_and_mqtt_set_override_until_the_next_rule() -> None:
    rig = PresenceRig()
    assert rig.keeper.set("away", "gone fishing") == "presence away — gone fishing"
    assert rig.sip.sent[-1] == Pidf(True, "away", "gone fishing")
    assert rig.keeper.set("dnd", None) == "presence dnd — door closed"
    rig.keeper.on_mqtt_set('{"status": "offline"}')
    assert rig.sip.sent[-1] == Pidf(False, "unknown", "door closed")
    rig.keeper.on_mqtt_set("sleeping")  # refused, nothing changes
    assert rig.sip.sent[-1] == Pidf(False, "unknown", "door closed")
    rig.door(True)
    assert rig.sip.sent[-1] == Pidf(True, "busy", "door open")
    with pytest.raises(PresenceError):
        rig.keeper.set("sleeping", None)


def test_an_unchanged_presence_is_not_sent_again() -> None:
    rig = PresenceRig()
    rig.keeper.on_output_changed()
    rig.keeper.set("available", None)
    assert len(rig.sip.sent) == 1


def test_templates_follow_outputs_too() -> None:
    rig = PresenceRig()
    rig.keeper.state = rig.keeper.state.with_rule(None, "lamp {lamp}")
    rig.pins.state["lamp"] = True
    rig.keeper.on_output_changed()
    assert rig.sip.sent[-1].note == "lamp on"


def test_publish_mode_republishes_after_each_registration_serve_mode_does_not() -> None:
    publish = PresenceRig(mode="publish", sip='registrar = "sip:127.0.0.1"')
    publish.keeper.on_registered()
    publish.keeper.on_registered()
    assert publish.sip.republished == 2
    serve = PresenceRig(mode="serve")
    serve.keeper.on_registered()
    assert serve.sip.republished == 0


def test_off_mode_sends_nothing_over_sip_but_tells_mqtt() -> None:
    rig = PresenceRig(mode="off")
    rig.door(True)
    assert rig.sip.sent == []
    assert (
        json.loads(rig.mqtt.last_retained("sipagent/porch/presence/state")[0])["status"] == "busy"
    )
    assert rig.keeper.authorize_watcher("sip:owner@127.0.0.1") == (489, "Bad Event")


@pytest.mark.parametrize(
    ("extra", "who", "code"),
    [
        ("", '"Owner" <sip:owner@127.0.0.1:5060;transport=udp>', 200),
        ("", "sip:eve@127.0.0.1", 403),
        ('watchers = ["sip:eve@127.0.0.1"]', "sip:eve@127.0.0.1", 200),
        ('watchers = ["sip:eve@127.0.0.1"]', "sip:owner@127.0.0.1", 403),
        ("watchers = []", "sip:owner@127.0.0.1", 403),
    ],
)
def test_watchers_are_the_allow_list_unless_configured(extra: str, who: str, code: int) -> None:
    assert PresenceRig(extra=extra).keeper.authorize_watcher(who)[0] == code


def test_watched_contacts_go_to_mqtt_and_status() -> None:
    rig = PresenceRig(extra='[presence.watch]\nbob = "sip:bob@127.0.0.1"')
    assert rig.keeper.status_lines()[-1] == "contacts: bob unknown"
    rig.sip.watching["bob"](BuddyState("bob", "sip:bob@127.0.0.1", "busy", "call", "ACTIVE"))
    payload, retained = rig.mqtt.last_retained("sipagent/porch/buddy/bob/state")
    assert retained and json.loads(payload) == {
        "uri": "sip:bob@127.0.0.1",
        "status": "busy",
        "note": "call",
        "subscription": "active",
    }
    assert rig.keeper.status_lines() == [
        "presence available — door closed (serve)",
        "inputs: door closed",
        "contacts: bob busy — call",
    ]


def test_announce_repeats_retained_state_and_close_withdraws() -> None:
    rig = PresenceRig()
    rig.mqtt.published.clear()
    rig.keeper.announce()
    assert [t for t, _, _ in rig.mqtt.published] == [
        "sipagent/porch/presence/state",
        "sipagent/porch/input/door/state",
    ]
    rig.keeper.close()
    assert rig.sip.closed_with == [CLOSED]
    payload, retained = rig.mqtt.last_retained("sipagent/porch/presence/state")
    assert json.loads(payload) == {"status": "offline", "note": ""} and retained


def test_publish_recovery_backs_off_to_five_minutes() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 7, 8, 20)] == [5, 10, 20, 300, 300, 300]


# --- the agent delegates to the keeper -----------------------------------------------------------


def test_agent_routes_inputs_mqtt_set_and_the_presence_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = AgentRig()
    rig.pins.active["door"] = True
    rig.agent.handle(InputChanged("door", True))
    assert rig.sip.sent[-1] == Pidf(True, "busy", "door open")
    rig.agent.handle(MqttMessage("sipagent/porch/presence/set", b"away"))
    assert rig.sip.sent[-1] == Pidf(True, "away", "door open")
    assert rig.agent.set_presence("dnd", "") == "presence dnd — door open"
    with pytest.raises(CommandError, match="unknown status 'nap'"):
        rig.agent.set_presence("nap", "")
    assert "presence dnd — door open (serve)" in rig.agent.status_lines()
    assert "inputs: door open" in rig.agent.status_lines()


def test_a_message_that_cannot_be_sent_does_not_stop_the_others() -> None:

    rig = PresenceRig()
    sent: list[str] = []

    def send(to: str, body: str) -> None:
        if "owner" in to:
            raise SipError(f"cannot send to {to}")
        sent.append(to)

    rig.keeper._send_message = send
    rig.door(True)
    assert sent == ["sip:bob@127.0.0.1"]
    assert rig.sip.sent[-1] == Pidf(True, "busy", "door open")
