"""The SIP command language: parsing, and a dispatch table that also writes `help`.

Pure logic. The device is reached through the `Controls` protocol, so the table can
be tested without GPIO, SIP or MQTT.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# A reply to one of our own replies would start a ping-pong between two agents.
REPLY_PREFIXES = ("ok:", "error:")
MAX_COMMAND_CHARS = 1000


class CommandError(Exception):
    """A command that cannot be carried out; the message is the reply after `error: `."""


@dataclass(frozen=True)
class Command:
    name: str
    target: str | None = None
    args: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(p for p in (self.name, self.target, *self.args) if p)


@dataclass(frozen=True)
class Result:
    ok: bool
    text: str

    @property
    def reply(self) -> str:
        return f"{'ok' if self.ok else 'error'}: {self.text}"


class Controls(Protocol):
    """What commands may do to the device."""

    def output_names(self) -> Sequence[str]: ...

    def output_is_on(self, name: str) -> bool: ...

    def set_output(self, name: str, on: bool) -> None: ...

    def status_lines(self) -> Sequence[str]: ...


Handler = Callable[[Command, Controls], str]


@dataclass(frozen=True)
class Spec:
    usage: str
    summary: str
    handler: Handler
    takes_output: bool = False


def _on(cmd: Command, controls: Controls) -> str:
    assert cmd.target is not None
    controls.set_output(cmd.target, True)
    return f"{cmd.target} on"


def _off(cmd: Command, controls: Controls) -> str:
    assert cmd.target is not None
    controls.set_output(cmd.target, False)
    return f"{cmd.target} off"


def _toggle(cmd: Command, controls: Controls) -> str:
    assert cmd.target is not None
    now_on = not controls.output_is_on(cmd.target)
    controls.set_output(cmd.target, now_on)
    return f"{cmd.target} {'on' if now_on else 'off'}"


def _status(cmd: Command, controls: Controls) -> str:
    return "; ".join(controls.status_lines())


def _help(cmd: Command, controls: Controls) -> str:
    # Replaced at dispatch time by help_text(), which knows what this sender may use.
    raise AssertionError("help is answered by execute()")


COMMANDS: dict[str, Spec] = {
    "help": Spec("help", "list the commands you may use", _help),
    "status": Spec("status", "outputs, registration, uptime", _status),
    "on": Spec("on <output>", "switch an output on", _on, takes_output=True),
    "off": Spec("off <output>", "switch an output off", _off, takes_output=True),
    "toggle": Spec("toggle <output>", "switch an output over", _toggle, takes_output=True),
}


def is_reply(body: str) -> bool:
    """True for text that is itself an `ok:`/`error:` reply and must not be answered."""
    return body.lstrip().lower().startswith(REPLY_PREFIXES)


def parse_command(body: str, content_type: str = "text/plain") -> Command:
    """Turn a message body into a Command; raises CommandError with a user-facing reason."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        return _parse_json(body)
    text = body.strip()
    if not text:
        raise CommandError("empty command (try 'help')")
    if len(text) > MAX_COMMAND_CHARS:
        raise CommandError(f"command longer than {MAX_COMMAND_CHARS} characters")
    words = text.split()
    name = words[0].lower()
    if name not in COMMANDS:
        raise CommandError(f"unknown command '{words[0]}' (commands: {', '.join(COMMANDS)})")
    spec = COMMANDS[name]
    if not spec.takes_output:
        if len(words) > 1:
            raise CommandError(f"'{name}' takes no arguments (usage: {spec.usage})")
        return Command(name)
    if len(words) != 2:
        raise CommandError(f"usage: {spec.usage}")
    return Command(name, words[1].lower())


def _parse_json(body: str) -> Command:
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise CommandError(f"invalid JSON: {err.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("command"), str):
        raise CommandError('JSON command needs a "command" string')
    target = data.get("target")
    if target is not None and not isinstance(target, str):
        raise CommandError('"target" must be a string')
    return parse_command(" ".join(p for p in (data["command"], target) if p))


def help_text(allowed: Sequence[str] | None = None) -> str:
    """One line per command this sender may use, generated from the dispatch table."""
    names = [n for n in COMMANDS if allowed is None or n in allowed]
    return "commands: " + "; ".join(f"{COMMANDS[n].usage} - {COMMANDS[n].summary}" for n in names)


def execute(cmd: Command, controls: Controls) -> Result:
    """Carry out a parsed command; never raises for a bad target."""
    spec = COMMANDS[cmd.name]
    if cmd.name == "help":
        return Result(True, help_text())
    if spec.takes_output:
        names = list(controls.output_names())
        if cmd.target not in names:
            choices = ", ".join(names) if names else "none configured"
            return Result(False, f"unknown output '{cmd.target}' (outputs: {choices})")
    try:
        return Result(True, spec.handler(cmd, controls))
    except CommandError as err:
        return Result(False, str(err))
