"""The command language: parsing and the dispatch table, with a fake device."""

from __future__ import annotations

import pytest

from agent.commands import (
    COMMANDS,
    Command,
    CommandError,
    execute,
    help_text,
    is_reply,
    parse_command,
)


class FakeDevice:
    def __init__(self) -> None:
        self.outputs = {"gate": False, "lamp": False}

    def output_names(self) -> list[str]:
        return list(self.outputs)

    def output_is_on(self, name: str) -> bool:
        return self.outputs[name]

    def set_output(self, name: str, on: bool) -> None:
        self.outputs[name] = on

    def status_lines(self) -> list[str]:
        return ["outputs: gate off", "SIP direct"]


PARSED = [
    ("help", Command("help")),
    ("HELP", Command("help")),
    ("status", Command("status")),
    ("on lamp", Command("on", "lamp")),
    ("  ON    Lamp  ", Command("on", "lamp")),
    ("off gate", Command("off", "gate")),
    ("Toggle gate\n", Command("toggle", "gate")),
]


@pytest.mark.parametrize(("body", "expected"), PARSED)
def test_parse(body: str, expected: Command) -> None:
    assert parse_command(body) == expected


REFUSED = [
    ("", "empty command (try 'help')"),
    ("   \n", "empty command (try 'help')"),
    ("open gate", "unknown command 'open' (commands: help, status, on, off, toggle)"),
    ("on", "usage: on <output>"),
    ("on gate lamp", "usage: on <output>"),
    ("status now", "'status' takes no arguments (usage: status)"),
    ("x" * 1001, "command longer than 1000 characters"),
]


@pytest.mark.parametrize(("body", "reason"), REFUSED)
def test_parse_refuses_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_command(body)
    assert str(err.value) == reason


def test_json_commands() -> None:
    assert parse_command('{"command": "on", "target": "gate"}', "application/json") == Command(
        "on", "gate"
    )
    assert parse_command('{"command": "status"}', "application/json; charset=utf-8") == Command(
        "status"
    )
    for body, reason in [
        ("{", "invalid JSON"),
        ("[]", '"command" string'),
        ('{"command": 3}', '"command" string'),
        ('{"command": "on", "target": 5}', '"target" must be a string'),
    ]:
        with pytest.raises(CommandError, match=reason):
            parse_command(body, "application/json")


def test_on_off_toggle_drive_the_device() -> None:
    device = FakeDevice()
    assert execute(Command("on", "gate"), device).reply == "ok: gate on"
    assert device.outputs["gate"] is True
    assert execute(Command("toggle", "gate"), device).reply == "ok: gate off"
    assert execute(Command("toggle", "gate"), device).reply == "ok: gate on"
    assert execute(Command("off", "gate"), device).reply == "ok: gate off"
    assert device.outputs == {"gate": False, "lamp": False}


def test_unknown_output_lists_the_valid_ones() -> None:
    device = FakeDevice()
    result = execute(Command("on", "gat"), device)
    assert result.reply == "error: unknown output 'gat' (outputs: gate, lamp)"
    assert device.outputs == {"gate": False, "lamp": False}


def test_status_and_help() -> None:
    device = FakeDevice()
    assert execute(Command("status"), device).reply == "ok: outputs: gate off; SIP direct"
    text = execute(Command("help"), device).reply
    for spec in COMMANDS.values():
        assert spec.usage in text  # help is generated from the dispatch table


def test_help_lists_only_what_is_allowed() -> None:
    assert help_text(["status"]) == "commands: status - outputs, registration, uptime"


@pytest.mark.parametrize(
    ("body", "reply"),
    [("ok: lamp on", True), ("  Error: forbidden", True), ("on lamp", False), ("okay", False)],
)
def test_replies_are_recognised(body: str, reply: bool) -> None:
    assert is_reply(body) is reply
