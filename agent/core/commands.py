"""The SIP command language: parsing, and a dispatch table that also writes `help`.

Pure logic. The device is reached through the `Controls` protocol, so the table can
be tested without GPIO, SIP or MQTT. Who may run what is decided in `agent.core.access`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import field
from typing import Protocol

from agent.config.model import OutputConfig
from agent.core.durations import InvalidDuration, format_duration, parse_duration
from agent.core.jsonin import JsonInputError, loads
from agent.core.presence import STATUSES, PresenceError, normalize_status
from agent.core.record import record
from agent.core.totp import CODE
from agent.core.untrusted import BadText, check_text, excerpt

# A reply to one of our own replies would start a ping-pong between two agents.
REPLY_PREFIXES = ("ok:", "error:")
MAX_COMMAND_BYTES = 1000
MAX_BLINK_COUNT = 10000
# A level is at most "100" or a short decimal; longer number words are refused unread.
MAX_LEVEL_CHARS = 12
# Shorter blink phases than this are not kept by a loop that may be busy for a few ms.
MIN_BLINK_S = 0.02
BLINK_ON_S = 0.5  # blink without times: 500 ms on, as long off
_ECHO = 40  # how much of a bad word an error quotes back


class CommandError(Exception):
    """A command that cannot be carried out; the message is the reply after `error: `."""


@record
class Command:
    """A parsed command: its name, target output and further arguments."""

    name: str
    target: str | None = None
    args: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(p for p in (self.name, self.target, *self.args) if p)

    @property
    def takes_output(self) -> bool:
        return COMMANDS[self.name].takes_output


@record
class Request:
    """A parsed message: the command, and the one-time code written before it, if any."""

    command: Command
    code: str | None = None


@record
class Result:
    """The outcome of a command: ok or not, and the reply text."""

    ok: bool
    text: str

    @property
    def reply(self) -> str:
        return f"{'ok' if self.ok else 'error'}: {self.text}"


class Controls(Protocol):
    """What commands may do to the device."""

    def output_names(self) -> Sequence[str]: ...

    def output_config(self, name: str) -> OutputConfig: ...

    def output_is_on(self, name: str) -> bool: ...

    def set_output(self, name: str, on: bool) -> None: ...

    def pulse(self, name: str, seconds: float) -> None: ...

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None: ...

    def set_level(self, name: str, level: float) -> None: ...

    def set_presence(self, status: str, note: str) -> str: ...

    def status_lines(self) -> Sequence[str]: ...


Handler = Callable[[Command, Controls], str]


@record
class Spec:
    """One command of the language: usage, help text and handler."""

    usage: str
    summary: str
    handler: Handler
    takes_output: bool = False
    max_args: int = 0  # words after the output (or after the name)
    json_fields: tuple[str, ...] = ()  # JSON keys, in the order of the words they become
    # A JSON key left out before one that is given: the word that stands in for it (words
    # are positional), or the name of an earlier key whose value it copies.
    json_gaps: Mapping[str, str] = field(default_factory=dict)


def _target(cmd: Command) -> str:
    assert cmd.target is not None
    return cmd.target


def _on(cmd: Command, controls: Controls) -> str:
    controls.set_output(_target(cmd), True)
    return f"{cmd.target} on"


def _off(cmd: Command, controls: Controls) -> str:
    controls.set_output(_target(cmd), False)
    return f"{cmd.target} off"


def _toggle(cmd: Command, controls: Controls) -> str:
    now_on = not controls.output_is_on(_target(cmd))
    controls.set_output(_target(cmd), now_on)
    return f"{cmd.target} {'on' if now_on else 'off'}"


def _bounded(text: str, what: str, low: float, high: float) -> float:
    seconds = parse_duration(text)
    if not low <= seconds <= high:
        raise CommandError(
            f"{what} {format_duration(seconds)} is out of range "
            f"{format_duration(low)}..{format_duration(high)}"
        )
    return seconds


def _pulse(cmd: Command, controls: Controls) -> str:
    cfg = controls.output_config(_target(cmd))
    seconds = cfg.pulse_s
    if cmd.args:
        seconds = _bounded(cmd.args[0], "pulse", 0.01, cfg.max_pulse_s)
    controls.pulse(_target(cmd), seconds)
    return f"{cmd.target} pulsed {format_duration(seconds)}"


def _blink(cmd: Command, controls: Controls) -> str:
    cfg = controls.output_config(_target(cmd))
    limit = max(MIN_BLINK_S, cfg.max_pulse_s)
    on_s = _bounded(cmd.args[0], "on time", MIN_BLINK_S, limit) if cmd.args else BLINK_ON_S
    off_s = _bounded(cmd.args[1], "off time", MIN_BLINK_S, limit) if len(cmd.args) > 1 else on_s
    count = int(cmd.args[2]) if len(cmd.args) > 2 else None
    controls.blink(_target(cmd), on_s, off_s, count)
    times = f" {count} times" if count is not None else ""
    return f"{cmd.target} blinking {format_duration(on_s)}/{format_duration(off_s)}{times}"


def _set(cmd: Command, controls: Controls) -> str:
    name = _target(cmd)
    cfg = controls.output_config(name)
    if not cfg.pwm:
        pwm = [n for n in controls.output_names() if controls.output_config(n).pwm]
        return_to = ", ".join(pwm) if pwm else "none configured"
        raise CommandError(f"'{name}' is not a PWM output (PWM outputs: {return_to})")
    percent = _percent(cmd.args[0])
    if percent != 0 and not cfg.level_min <= percent <= cfg.level_max:
        raise CommandError(
            f"level {percent:g}% is out of range for {name} "
            f"(0% or {cfg.level_min}..{cfg.level_max}%)"
        )
    controls.set_level(name, percent / 100.0)
    return f"{name} at {percent:g}%"


def _percent(text: str) -> float:
    number = text.removesuffix("%")
    if len(number) > MAX_LEVEL_CHARS:
        raise CommandError(f"'{_echo(text)}' is not a level (e.g. 40%)")
    try:
        value = float(number)
    except ValueError:
        raise CommandError(f"'{_echo(text)}' is not a level (e.g. 40%)") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise CommandError(f"level '{_echo(text)}' is out of range 0..100%")
    return value


def _presence(cmd: Command, controls: Controls) -> str:
    assert cmd.args
    return controls.set_presence(cmd.args[0], " ".join(cmd.args[1:]))


def _status(cmd: Command, controls: Controls) -> str:
    return "; ".join(controls.status_lines())


def _help(cmd: Command, controls: Controls) -> str:
    # Answered by execute() with help_text(), which knows what this sender may use.
    raise AssertionError("help is answered by execute()")


COMMANDS: dict[str, Spec] = {
    "help": Spec("help", "list the commands you may use", _help),
    "status": Spec("status", "outputs, registration, uptime", _status),
    "on": Spec("on <output>", "switch an output on", _on, True),
    "off": Spec("off <output>", "switch an output off", _off, True),
    "toggle": Spec("toggle <output>", "switch an output over", _toggle, True),
    "pulse": Spec(
        "pulse <output> [<duration>]", "on, then off after e.g. 500ms or 2s", _pulse, True, 1,
        ("duration",),
    ),
    "blink": Spec(
        "blink <output> [<on>] [<off>] [<count>]", "blink, e.g. blink lamp 200ms 800ms 5",
        _blink, True, 3, ("on", "off", "count"),
        {"on": format_duration(BLINK_ON_S), "off": "on"},
    ),
    "set": Spec("set <output> <0-100>%", "PWM level", _set, True, 1, ("level",)),
    "presence": Spec(
        f"presence <{'|'.join(STATUSES)}> [<note>]", "the device's SIP presence",
        _presence, False, -1, ("status", "note"),
    ),
}  # fmt: skip


def is_reply(body: str) -> bool:
    """True for text that is itself an `ok:`/`error:` reply and must not be answered."""
    return body.lstrip().lower().startswith(REPLY_PREFIXES)


def parse_request(
    body: str, content_type: str = "text/plain", max_bytes: int = MAX_COMMAND_BYTES
) -> Request:
    """Turn a message body into a Request; raises CommandError with a user-facing reason."""
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise CommandError(f"message of {size} bytes is longer than {max_bytes} bytes")
    _check_text(body)
    if content_type.split(";")[0].strip().lower() == "application/json":
        return _parse_json(body)
    words = body.split()
    code = None
    if words and CODE.fullmatch(words[0]):
        code, words = words[0], words[1:]
    return Request(_parse_words(words), code)


def _check_text(body: str) -> None:
    try:
        check_text(body, "the message", allowed_controls="\t\n\r")
    except BadText as err:
        raise CommandError(str(err)) from None


def _parse_words(words: Sequence[str]) -> Command:
    if not words:
        raise CommandError("empty command (try 'help')")
    name = words[0].lower()
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(f"unknown command '{_echo(words[0])}' (commands: {', '.join(COMMANDS)})")
    rest = list(words[1:])
    if name == "presence":
        if not rest:
            raise CommandError(f"usage: {spec.usage}")
        try:  # the words and their aliases (`online`) are agent.core.presence's, for every path
            status = normalize_status(rest[0])
        except PresenceError:
            raise CommandError(f"usage: {spec.usage}") from None
        # The note keeps its case: people read it in their buddy lists.
        return Command(name, None, (status, *rest[1:]))
    if not spec.takes_output:
        if rest:
            raise CommandError(f"'{name}' takes no arguments (usage: {spec.usage})")
        return Command(name)
    if not rest or len(rest) > 1 + spec.max_args:
        raise CommandError(f"usage: {spec.usage}")
    args = tuple(a.lower() for a in rest[1:])
    _check_args(name, args, spec)
    return Command(name, rest[0].lower(), args)


def _check_args(name: str, args: tuple[str, ...], spec: Spec) -> None:
    """Syntax only; limits depend on the output and are checked when it runs."""
    if name in ("pulse", "blink"):
        for arg in args[:2] if name == "blink" else args:
            try:
                parse_duration(arg)
            except InvalidDuration as err:
                raise CommandError(f"{err} (usage: {spec.usage})") from None
        count = args[2] if name == "blink" and len(args) == 3 else None
        if count is not None and not (
            len(count) <= len(str(MAX_BLINK_COUNT))
            and count.isascii()
            and count.isdigit()
            and 1 <= int(count) <= MAX_BLINK_COUNT
        ):
            raise CommandError(f"count '{_echo(count)}' is not a number 1..{MAX_BLINK_COUNT}")
    elif name == "set":
        if not args:
            raise CommandError(f"usage: {spec.usage}")
        _percent(args[0])


def _parse_json(body: str) -> Request:
    try:
        data = loads(body)
    except JsonInputError as err:
        raise CommandError(str(err)) from None
    if not isinstance(data, dict) or not isinstance(data.get("command"), str):
        raise CommandError('JSON command needs a "command" string')
    name = data["command"].strip().lower()
    spec = COMMANDS.get(name)
    fields = (("target",) if spec and spec.takes_output else ()) + (
        spec.json_fields if spec else ()
    )
    words = [data["command"]]
    given: dict[str, str] = {}
    for i, key in enumerate(fields):
        value = data.get(key)
        if value is None:
            if not any(data.get(later) is not None for later in fields[i + 1 :]):
                continue  # trailing words may be left out
            gap = spec.json_gaps.get(key) if spec else None
            if gap is None:
                raise CommandError(f'"{key}" is needed when a later field is given')
            value = given.get(gap, gap)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise CommandError(f'"{key}" must be a string or a number')
        given[key] = str(value)
        words += str(value).split()
    code = data.get("code")
    if code is not None and not (isinstance(code, str) and CODE.fullmatch(code)):
        raise CommandError('"code" must be a string of 6 digits')
    return Request(_parse_words(words), code)


def _echo(word: str) -> str:
    return excerpt(word, _ECHO)


def help_text(allowed: Collection[str] | None = None) -> str:
    """One line per command this sender may use, generated from the dispatch table."""
    names = [n for n in COMMANDS if allowed is None or n in allowed or n == "help"]
    return "commands: " + "; ".join(f"{COMMANDS[n].usage} - {COMMANDS[n].summary}" for n in names)


def execute(cmd: Command, controls: Controls, allowed: Collection[str] | None = None) -> Result:
    """Carry out a parsed command; never raises for a bad target or value."""
    spec = COMMANDS[cmd.name]
    if cmd.name == "help":
        return Result(True, help_text(allowed))
    if spec.takes_output:
        names = list(controls.output_names())
        if cmd.target not in names:
            choices = ", ".join(names) if names else "none configured"
            return Result(False, f"unknown output '{_echo(cmd.target or '')}' (outputs: {choices})")
    try:
        return Result(True, spec.handler(cmd, controls))
    except (CommandError, InvalidDuration) as err:
        return Result(False, str(err))
