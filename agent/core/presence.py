"""The device's presence: a status word plus a note, and how it maps to PIDF + RPID.

Pure logic, no I/O: the SIP side (agent.adapters.sip.presence) turns a `Pidf` into pjsua2's
`PresenceStatus`, and agent.core.presence_keeper decides when the presence changes.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping

from agent.core.jsonin import JsonInputError, loads
from agent.core.record import record
from agent.core.untrusted import BadText, check_text, excerpt

# The status words of the command language, in the order `help` lists them.
STATUSES = ("available", "away", "busy", "dnd", "offline")
# Spellings people use for the same thing.
ALIASES = {"online": "available", "open": "available", "closed": "offline", "donotdisturb": "dnd"}
MAX_NOTE_CHARS = 200


class PresenceError(ValueError):
    """A presence request that cannot be applied; the message says what to send instead."""


@record
class Presence:
    """The effective presence: what watchers see and `B/presence/state` says."""

    status: str
    note: str

    def as_json(self) -> str:
        return json.dumps({"status": self.status, "note": self.note})

    def describe(self) -> str:
        """`busy — door open`, the way a buddy list shows it."""
        return f"{self.status} — {self.note}" if self.note else self.status


@record
class Pidf:
    """PIDF basic state plus the RPID activity pjsua can express (unknown, away, busy)."""

    open: bool
    activity: str  # "unknown" | "away" | "busy"
    note: str


# status -> (basic open?, RPID activity). pjsua knows only away and busy as activities, so
# "do not disturb" is busy; offline is basic closed, which every client shows as offline.
_PIDF = {
    "available": (True, "unknown"),
    "away": (True, "away"),
    "busy": (True, "busy"),
    "dnd": (True, "busy"),
    "offline": (False, "unknown"),
}


def normalize_status(word: str) -> str:
    """The canonical status for `word` (case-insensitive); PresenceError for anything else."""
    key = word.strip().lower()
    key = ALIASES.get(key, key)
    if key not in _PIDF:
        raise PresenceError(
            f"unknown status {excerpt(word, 40)!r} (use one of: {', '.join(STATUSES)})"
        )
    return key


def pidf_of(presence: Presence) -> Pidf:
    open_, activity = _PIDF[presence.status]
    return Pidf(open_, activity, presence.note)


def status_of_pidf(open_: bool | None, activity: str) -> str:
    """The status word a watched contact's PIDF stands for (None: nothing known yet)."""
    if open_ is None:
        return "unknown"
    if not open_:
        return "offline"
    return {"busy": "busy", "away": "away"}.get(activity, "available")


# -- note templates ------------------------------------------------------------------------


def template_fields(template: str) -> list[str]:
    """The `{name}` fields of a note template; ValueError for broken braces."""
    fields = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        plain = field.replace("_", "").replace("-", "").isalnum() and not field.isdigit()
        if not field or spec or conversion or not plain:
            raise ValueError(f"{{{field}}} is not a plain {{name}} field")
        fields.append(field)
    return fields


def render_note(template: str, values: Mapping[str, str]) -> str:
    """Fill `{name}` fields from the device state; a name without a value stays as it is."""
    try:
        fields = template_fields(template)
    except ValueError:
        return template
    if not fields:
        return template.replace("{{", "{").replace("}}", "}")
    return template.format_map({f: values.get(f, "{" + f + "}") for f in fields})


def literal_template(note: str) -> str:
    """A note given by a person is shown as written, even when it contains braces."""
    return note.replace("{", "{{").replace("}", "}}")


# -- requests ------------------------------------------------------------------------------


@record
class PresenceRequest:
    """A status (and note) asked for by a command or MQTT."""

    status: str
    note: str | None  # None: back to the configured note template


def parse_request(text: str) -> PresenceRequest:
    """A `B/presence/set` payload: a status word, `busy some note`, or JSON {status, note}."""
    text = text.strip()
    if not text:
        raise PresenceError(f"empty presence (use one of: {', '.join(STATUSES)})")
    if text.startswith("{"):
        try:
            data = loads(text)
        except JsonInputError as err:
            raise PresenceError(str(err)) from None
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise PresenceError('JSON presence needs a "status" string')
        note = data.get("note")
        if note is not None and not isinstance(note, str):
            raise PresenceError('"note" must be a string')
        return request(data["status"], note)
    word, _, rest = text.partition(" ")
    return request(word, rest.strip() or None)


def request(status: str, note: str | None) -> PresenceRequest:
    """Validate a status and an optional note from a person (SIP command, JSON, MQTT)."""
    return PresenceRequest(normalize_status(status), None if note is None else check_note(note))


def check_note(note: str) -> str:
    """The note as watchers will see it: one line, or PresenceError saying what is wrong.

    The one rule for notes on every path (the `presence` command, its JSON form,
    `B/presence/set`): runs of white space become one space, as the command language's
    word splitting does, so a note means the same whichever way it came; other control
    characters are refused, as in a command.
    """
    line = " ".join(note.split())
    validate_note(line)
    return line


def validate_note(note: str) -> None:
    """PresenceError unless `note` is as check_note would leave it (no control characters)."""
    try:
        check_text(note, "the note")
    except BadText as err:
        raise PresenceError(str(err)) from None
    if len(note) > MAX_NOTE_CHARS:
        raise PresenceError(f"note longer than {MAX_NOTE_CHARS} characters")


# -- PIDF text ------------------------------------------------------------------------------

# pjsua prints the note into its PIDF as it is (pjlib's XML printer escapes nothing) and hands
# a received note over as it stood in the XML (its parser decodes no entities): the agent
# escapes on the way out and decodes on the way in.
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_XML_ENTITY = re.compile(r"&(amp|lt|gt|quot|apos|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def xml_text(text: str) -> str:
    """`text` as XML character data: `Tom & Jerry` -> `Tom &amp; Jerry`."""
    return "".join(_XML_ESCAPES.get(c, c) for c in text)


def from_xml_text(text: str) -> str:
    """The text an XML parser would read from character data with entity references."""

    def decode(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith("#"):
            return _NAMED[name]
        code = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
        if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code)
        return match.group()  # no character: left as it was written

    return _XML_ENTITY.sub(decode, text)


# -- the state -----------------------------------------------------------------------------


@record
class PresenceState:
    """The status and the note *template*: the note follows the device while it is a template."""

    status: str
    template: str

    def with_request(self, req: PresenceRequest, default_template: str) -> PresenceState:
        template = default_template if req.note is None else literal_template(req.note)
        return PresenceState(req.status, template)

    def with_status(self, status: str) -> PresenceState:
        """A new status alone (Home Assistant's select): the note stays as it is."""
        return PresenceState(normalize_status(status), self.template)

    def with_note(self, note: str, default_template: str) -> PresenceState:
        """A new note alone (Home Assistant's text); an empty one goes back to the template."""
        note = check_note(note)
        return PresenceState(self.status, literal_template(note) if note else default_template)

    def with_rule(self, status: str | None, template: str | None) -> PresenceState:
        return PresenceState(status or self.status, self.template if template is None else template)

    def effective(self, values: Mapping[str, str]) -> Presence:
        return Presence(self.status, render_note(self.template, values))


# After pjsua gives a publication up it publishes again only after a successful REGISTER: the
# SIP adapter registers again that long after a failure, doubling per failure in a row, up to
# the cap.
PUBLISH_RETRY_S = 5.0
PUBLISH_RETRY_MAX_S = 300.0


def retry_delay(failures_in_a_row: int) -> float:
    """How long after a failed publication to register (and so publish) again."""
    delay: float = min(PUBLISH_RETRY_S * 2 ** max(failures_in_a_row - 1, 0), PUBLISH_RETRY_MAX_S)
    return delay
