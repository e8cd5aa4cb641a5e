"""The command language: parsing and the dispatch table, with a fake device."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from agent.core import presence
from agent.core.commands import (
    COMMANDS,
    Command,
    CommandError,
    Request,
    execute,
    help_text,
    is_reply,
    parse_request,
)
from lab.fakes import DIMMER, GATE, FakeDevice


def parse_command(body: str, content_type: str = "text/plain") -> Command:
    """The command of a message body (any one-time code dropped)."""
    return parse_request(body, content_type).command


PARSED = [
    ("help", Command("help")),
    ("HELP", Command("help")),
    ("status", Command("status")),
    ("on lamp", Command("on", "lamp")),
    ("  ON    Lamp  ", Command("on", "lamp")),
    ("off gate", Command("off", "gate")),
    ("Toggle gate\n", Command("toggle", "gate")),
    ("pulse gate", Command("pulse", "gate")),
    ("PULSE Gate 500MS", Command("pulse", "gate", ("500ms",))),
    ("blink lamp", Command("blink", "lamp")),
    ("blink lamp 200ms 0.8 5", Command("blink", "lamp", ("200ms", "0.8", "5"))),
    ("set dimmer 40%", Command("set", "dimmer", ("40%",))),
    ("set dimmer 40", Command("set", "dimmer", ("40",))),
    ("presence busy", Command("presence", None, ("busy",))),
    ("Presence DND  In a Meeting", Command("presence", None, ("dnd", "In", "a", "Meeting"))),
]


@pytest.mark.parametrize(("body", "expected"), PARSED)
def test_parse(body: str, expected: Command) -> None:
    assert parse_command(body) == expected


def test_a_six_digit_first_word_is_a_one_time_code() -> None:
    assert parse_request("492039 pulse gate 2s") == Request(
        Command("pulse", "gate", ("2s",)), "492039"
    )
    assert parse_request("pulse gate").code is None


ALL = "help, status, on, off, toggle, pulse, blink, set, presence"
REFUSED = [
    ("", "empty command (try 'help')"),
    ("   \n", "empty command (try 'help')"),
    ("123456", "empty command (try 'help')"),
    ("open gate", f"unknown command 'open' (commands: {ALL})"),
    ("on", "usage: on <output>"),
    ("on gate lamp", "usage: on <output>"),
    ("status now", "'status' takes no arguments (usage: status)"),
    ("pulse gate 2s 3s", "usage: pulse <output> [<duration>]"),
    (
        "pulse gate soon",
        "'soon' is not a duration (e.g. 500ms, 2s, 1.5s, 1m) (usage: pulse <output> [<duration>])",
    ),
    ("blink lamp 1s 1s 0", "count '0' is not a number 1..10000"),
    ("blink lamp 1s 1s many", "count 'many' is not a number 1..10000"),
    ("set dimmer", "usage: set <output> <0-100>%"),
    ("set dimmer lots", "'lots' is not a level (e.g. 40%)"),
    ("set dimmer 101%", "level '101%' is out of range 0..100%"),
    ("set dimmer nan", "level 'nan' is out of range 0..100%"),
    ("presence", "usage: presence <available|away|busy|dnd|offline> [<note>]"),
    ("presence sleepy", "usage: presence <available|away|busy|dnd|offline> [<note>]"),
    ("x" * 1001, "message of 1001 bytes is longer than 1000 bytes"),
    ("on\x00 gate", "the message contains a control character (U+0000)"),
    ("on gate\x1b[2J", "the message contains a control character (U+001B)"),
    ("on \u202egate", "the message contains a control character (U+202E)"),
    ("on gate \udcff", "the message is not UTF-8 text"),
    ("on gate \ufffd", "the message is not UTF-8 text"),
    ("o" * 60, "unknown command '" + "o" * 39 + f"…' (commands: {ALL})"),
]


@pytest.mark.parametrize(("body", "reason"), REFUSED)
def test_parse_refuses_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_command(body)
    assert str(err.value) == reason


def test_json_commands() -> None:
    def parse(body: str) -> Request:
        return parse_request(body, "application/json")

    assert parse('{"command": "on", "target": "gate"}').command == Command("on", "gate")
    assert parse_command('{"command": "status"}', "application/json; charset=utf-8") == Command(
        "status"
    )
    assert parse('{"command": "pulse", "target": "gate", "duration": "2s"}') == Request(
        Command("pulse", "gate", ("2s",))
    )
    assert parse('{"command": "set", "target": "dimmer", "level": 40}').command == Command(
        "set", "dimmer", ("40",)
    )
    # Words are positional: a count given without the times before it gets their defaults
    # (500 ms on, off as long as on), never read as the off time.
    assert parse(
        '{"command": "blink", "target": "lamp", "on": "100ms", "count": 3}'
    ).command == Command("blink", "lamp", ("100ms", "100ms", "3"))
    assert parse('{"command": "blink", "target": "lamp", "count": 3}').command == Command(
        "blink", "lamp", ("500ms", "500ms", "3")
    )
    assert parse('{"command": "blink", "target": "lamp", "off": "1s"}').command == Command(
        "blink", "lamp", ("500ms", "1s")
    )
    assert parse(
        '{"command": "presence", "status": "away", "note": "Back at 5"}'
    ).command == Command("presence", None, ("away", "Back", "at", "5"))
    assert parse('{"command": "on", "target": "gate", "code": "123456"}').code == "123456"
    for body, reason in [
        ("{", "invalid JSON"),
        ("[]", '"command" string'),
        ('{"command": 3}', '"command" string'),
        ('{"command": "on", "target": {}}', '"target" must be a string or a number'),
        ('{"command": "on", "target": true}', '"target" must be a string or a number'),
        ('{"command": "on", "target": "gate", "code": 123456}', '"code" must be a string'),
        ("[" * 999, "invalid JSON"),
        ('{"command": "pulse", "duration": "2s"}', '"target" is needed'),
    ]:
        with pytest.raises(CommandError, match=reason):
            parse(body)


def test_on_off_toggle_drive_the_device() -> None:
    device = FakeDevice()
    assert execute(Command("on", "gate"), device).reply == "ok: gate on"
    assert device.levels["gate"] == 1.0
    assert execute(Command("toggle", "gate"), device).reply == "ok: gate off"
    assert execute(Command("toggle", "gate"), device).reply == "ok: gate on"
    assert execute(Command("off", "gate"), device).reply == "ok: gate off"
    assert device.levels["gate"] == 0.0


def test_pulse_uses_the_default_and_the_limit_of_the_output() -> None:
    device = FakeDevice()
    assert execute(Command("pulse", "gate"), device).reply == "ok: gate pulsed 1s"
    assert execute(Command("pulse", "gate", ("500ms",)), device).reply == "ok: gate pulsed 500ms"
    assert execute(Command("pulse", "gate", ("11s",)), device).reply == (
        "error: pulse 11s is out of range 10ms..10s"
    )
    assert device.calls == [("pulse", "gate", 1.0), ("pulse", "gate", 0.5)]


def test_blink_defaults_and_limits() -> None:
    device = FakeDevice()
    assert execute(Command("blink", "lamp"), device).reply == "ok: lamp blinking 500ms/500ms"
    reply = execute(Command("blink", "lamp", ("200ms", "1s", "3")), device).reply
    assert reply == "ok: lamp blinking 200ms/1s 3 times"
    assert execute(Command("blink", "lamp", ("1ms",)), device).reply == (
        "error: on time 1ms is out of range 20ms..10s"
    )
    assert device.calls == [("blink", "lamp", 0.5, 0.5, None), ("blink", "lamp", 0.2, 1.0, 3)]


def test_set_levels_only_pwm_outputs_within_their_range() -> None:
    device = FakeDevice()
    assert execute(Command("set", "dimmer", ("40%",)), device).reply == "ok: dimmer at 40%"
    assert device.levels["dimmer"] == pytest.approx(0.4)
    assert execute(Command("set", "dimmer", ("0",)), device).reply == "ok: dimmer at 0%"
    assert execute(Command("set", "dimmer", ("95%",)), device).reply == (
        "error: level 95% is out of range for dimmer (0% or 20..90%)"
    )
    assert execute(Command("set", "gate", ("50%",)), device).reply == (
        "error: 'gate' is not a PWM output (PWM outputs: dimmer)"
    )
    assert device.levels["dimmer"] == 0.0


def test_presence_goes_to_the_controls() -> None:
    device = FakeDevice()
    reply = execute(parse_command("presence away Back at 5"), device).reply
    assert reply == "ok: presence away"
    assert device.presence == ("away", "Back at 5")


def test_unknown_output_lists_the_valid_ones() -> None:
    device = FakeDevice()
    result = execute(Command("on", "gat"), device)
    assert result.reply == "error: unknown output 'gat' (outputs: gate, lamp, dimmer)"
    assert set(device.levels.values()) == {0.0}


def test_status_and_help() -> None:
    device = FakeDevice()
    assert execute(Command("status"), device).reply == "ok: outputs: gate off; SIP direct"
    text = execute(Command("help"), device).reply
    for spec in COMMANDS.values():
        assert spec.usage in text  # help is generated from the dispatch table


def test_help_lists_only_what_is_allowed() -> None:
    assert help_text(["status"]) == (
        "commands: help - list the commands you may use; status - outputs, registration, uptime"
    )
    assert "pulse" not in execute(Command("help"), FakeDevice(), ["on"]).reply


@pytest.mark.parametrize(
    ("body", "reply"),
    [("ok: lamp on", True), ("  Error: forbidden", True), ("on lamp", False), ("okay", False)],
)
def test_replies_are_recognised(body: str, reply: bool) -> None:
    assert is_reply(body) is reply


# The bounds themselves are allowed; one step past them is not. GATE: max_pulse 10 s;
# DIMMER: levels 20..90 %.
BOUNDS = [
    (Command("pulse", "gate", ("10s",)), "ok: gate pulsed 10s"),
    (Command("pulse", "gate", ("20ms",)), "ok: gate pulsed 20ms"),
    (Command("blink", "lamp", ("20ms", "10s")), "ok: lamp blinking 20ms/10s"),
    (Command("blink", "lamp", ("20ms", "19ms")), "error: off time 19ms is out of range 20ms..10s"),
    (Command("blink", "lamp", ("300ms",)), "ok: lamp blinking 300ms/300ms"),
    (Command("blink", "lamp", ("1s", "2s", "1")), "ok: lamp blinking 1s/2s 1 times"),
    (Command("blink", "lamp", ("1s", "2s", "10000")), "ok: lamp blinking 1s/2s 10000 times"),
    (Command("set", "dimmer", ("20%",)), "ok: dimmer at 20%"),
    (Command("set", "dimmer", ("90%",)), "ok: dimmer at 90%"),
    (
        Command("set", "dimmer", ("19.9%",)),
        "error: level 19.9% is out of range for dimmer (0% or 20..90%)",
    ),
    (
        Command("set", "dimmer", ("90.1%",)),
        "error: level 90.1% is out of range for dimmer (0% or 20..90%)",
    ),
]


@pytest.mark.parametrize(("cmd", "reply"), BOUNDS)
def test_the_bounds_themselves_are_allowed(cmd: Command, reply: str) -> None:
    assert execute(cmd, FakeDevice()).reply == reply


def test_levels_up_to_100_percent_and_twelve_characters_are_read() -> None:
    device = FakeDevice()
    device.configs["dimmer"] = replace(DIMMER, level_max=100)
    assert execute(Command("set", "dimmer", ("100%",)), device).reply == "ok: dimmer at 100%"
    assert parse_command("set dimmer 0.0000000001%").args == ("0.0000000001%",)  # 12 digits
    with pytest.raises(CommandError, match="is not a level"):
        parse_command("set dimmer 0.00000000001%")


def test_exact_refusals_of_json_and_words() -> None:
    with pytest.raises(CommandError) as err:
        parse_request('{"target": "lamp"}', "application/json")
    assert str(err.value) == 'JSON command needs a "command" string'
    with pytest.raises(CommandError) as err:
        parse_request('{"command": "on", "target": "gate", "code": 123}', "application/json")
    assert str(err.value) == '"code" must be a string of 6 digits'
    word = "w" * 40  # echoed whole up to 40 characters, cut after
    assert str(execute(Command("on", word), FakeDevice()).reply) == (
        f"error: unknown output '{word}' (outputs: gate, lamp, dimmer)"
    )
    cut = execute(Command("on", word + "x"), FakeDevice()).reply
    assert cut == f"error: unknown output '{word[:39]}…' (outputs: gate, lamp, dimmer)"


def test_with_no_outputs_or_no_pwm_the_reply_says_none_configured() -> None:
    device = FakeDevice()
    device.configs = {"gate": GATE}
    assert execute(Command("set", "gate", ("50%",)), device).reply == (
        "error: 'gate' is not a PWM output (PWM outputs: none configured)"
    )
    device.configs = {}
    assert execute(Command("on", "gate"), device).reply == (
        "error: unknown output 'gate' (outputs: none configured)"
    )
    assert execute(Command("help"), device).ok


def test_a_blink_count_of_one_is_a_count() -> None:
    assert parse_command("blink lamp 1s 2s 1").args == ("1s", "2s", "1")


def test_json_fields_a_command_does_not_take_are_not_read() -> None:
    request = parse_request('{"command": "status", "target": "gate"}', "application/json")
    assert request.command == Command("status")


def test_off_and_toggle_hand_the_device_a_bool() -> None:
    seen: list[tuple[str, object]] = []
    device = FakeDevice()
    device.set_output = lambda name, on: seen.append((name, on))  # type: ignore[method-assign]
    execute(Command("off", "gate"), device)
    execute(Command("toggle", "gate"), device)  # the gate is off: toggled on
    assert seen == [("gate", False), ("gate", True)]


def test_a_level_for_a_digital_output_names_every_pwm_output() -> None:
    device = FakeDevice()
    device.configs["fan"] = replace(DIMMER, name="fan")
    assert execute(Command("set", "gate", ("50%",)), device).reply == (
        "error: 'gate' is not a PWM output (PWM outputs: dimmer, fan)"
    )


@pytest.mark.parametrize("word", [*presence.STATUSES, *presence.ALIASES, "ONLINE", "Away"])
def test_a_presence_word_means_the_same_on_every_path(word: str) -> None:
    # One list of statuses and aliases (agent.core.presence): the SIP command, its JSON form
    # and `B/presence/set` agree on every word, `online` included (it was refused over SIP).
    expected = presence.normalize_status(word)
    as_text = parse_command(f"presence {word} at the door")
    as_json = parse_command(
        json.dumps({"command": "presence", "status": word, "note": "at the door"}),
        "application/json",
    )
    over_mqtt = presence.parse_request(f"{word} at the door")
    assert as_text.args == as_json.args == (expected, "at", "the", "door")
    assert over_mqtt.status == expected


@pytest.mark.parametrize("word", ["onlin", "present", "offline!", "0"])
def test_a_word_no_path_knows_is_refused_on_each(word: str) -> None:
    with pytest.raises(
        CommandError, match=re.escape("usage: presence <available|away|busy|dnd|offline>")
    ):
        parse_command(f"presence {word}")
    with pytest.raises(presence.PresenceError, match="unknown status"):
        presence.parse_request(word)
