"""What the agent accepts on the MQTT topics it listens on, before anything acts on it. Pure.

Every client of the broker may publish there (unless the broker's ACLs say otherwise), so
each topic has a payload size bound, checked on paho's thread before a payload is queued,
and `B/message/send` is read field by field against what SIP allows: nothing in it can add a
header to the request the agent sends.
"""

from __future__ import annotations

import re

from agent.core.jsonin import JsonInputError, loads
from agent.core.record import record
from agent.core.sipuri import InvalidSipUri, parse_sip_uri
from agent.core.untrusted import BadText, check_text, excerpt

# Fixed bounds of the topics whose payloads are short by nature (bytes).
OUTPUT_SET_BYTES = 256  # ON, OFF, TOGGLE, {"level": 40}
PRESENCE_SET_BYTES = 2048  # a status word and a note of at most 200 characters, as JSON
HA_STATUS_BYTES = 64  # online / offline
# Fields of B/message/send (characters).
MAX_ID_CHARS = 128
MAX_URI_CHARS = 512
MAX_CONTENT_TYPE_CHARS = 128

# RFC 3261 25.1: media-type = m-type SLASH m-subtype *(SEMI m-parameter), values token or
# quoted-string. No white space but single spaces around ';', so no CR or LF can get in.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[ !\x23-\x5b\x5d-\x7e]|\\[ -~])*"'
_ACCOUNT = re.compile(r"[a-z0-9_-]{1,64}")
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?: ?; ?{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*")


@record
class PayloadBounds:
    """The largest payload each kind of topic (agent.core.topics.Topics.kind) takes, in bytes."""

    command_bytes: int  # access.max_message_bytes: a command line, as over SIP
    send_bytes: int  # mqtt.max_payload: B/message/send

    def limit(self, kind: str | None) -> int:
        return {
            "command": self.command_bytes,
            "group_command": self.command_bytes,
            "message_send": self.send_bytes,
            "presence_set": PRESENCE_SET_BYTES,
            "presence_status_set": PRESENCE_SET_BYTES,
            "presence_note_set": PRESENCE_SET_BYTES,
            "output_set": OUTPUT_SET_BYTES,
        }.get(kind or "", HA_STATUS_BYTES)


@record
class SendRequest:
    """A `B/message/send` request whose every field may go into a SIP MESSAGE."""

    id: str | None  # None: the agent makes one
    to: str
    body: str
    content_type: str
    # Ask the recipient for delivery notices (sent wrapped in CPIM, agent.core.receipts).
    notify: bool = False
    account: str | None = None  # which SIP account sends it ([[sip.accounts]]); None: the first


class SendRefused(ValueError):
    """A `B/message/send` payload that cannot be sent; `id` and `to` as far as they were read."""

    def __init__(self, reason: str, id: str | None = None, to: str = "") -> None:
        super().__init__(reason)
        self.id = id
        self.to = to


def parse_send(payload: bytes) -> SendRequest:
    """`{"to": "sip:…", "body": "…", "id": "…", "content_type": "…", "notify": true}`,
    or SendRefused."""
    try:
        data = loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise SendRefused("the payload is not UTF-8") from None
    except JsonInputError as err:
        raise SendRefused(str(err)) from None
    if not isinstance(data, dict):
        raise SendRefused('expected a JSON object {"to": "sip:…", "body": "…"}')
    request_id = _id(data.get("id"))
    to, body = data.get("to"), data.get("body")
    echo = excerpt(to) if isinstance(to, str) else ""
    try:
        if not isinstance(to, str) or not isinstance(body, str):
            raise SendRefused('"to" and "body" must be strings')
        content_type = data.get("content_type", "text/plain")
        _check_to(to)
        _check_body(body)
        _check_content_type(content_type)
        notify = data.get("notify", False)
        if not isinstance(notify, bool):
            raise SendRefused('"notify" must be true or false')
        account = data.get("account")
        if account is not None and not (isinstance(account, str) and _ACCOUNT.fullmatch(account)):
            raise SendRefused('"account" must be the name of a SIP account ([a-z0-9_-]+)')
    except SendRefused as err:
        raise SendRefused(str(err), request_id, echo) from None
    return SendRequest(request_id, to, body, content_type, notify, account)


def _id(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SendRefused('"id" must be a string')
    text = str(value)
    if len(text) > MAX_ID_CHARS:
        raise SendRefused(f'"id" longer than {MAX_ID_CHARS} characters')
    try:
        check_text(text, '"id"')
    except BadText as err:
        raise SendRefused(str(err)) from None
    return text


def _check_to(to: str) -> None:
    if len(to) > MAX_URI_CHARS:
        raise SendRefused(f'"to" longer than {MAX_URI_CHARS} characters')
    try:
        check_text(to, '"to"')
        parse_sip_uri(to)  # refuse at once what no registration could make sendable
    except (BadText, InvalidSipUri) as err:
        raise SendRefused(str(err)) from None
    if "?" in to.rpartition("@")[2]:
        # pjsip would copy URI headers (?Subject=…) into the request: no header from MQTT.
        raise SendRefused('"to" must not carry URI headers (?…)')


def _check_body(body: str) -> None:
    # A body is framed by Content-Length, so any text may be in it; only text that cannot
    # be sent as UTF-8 (lone surrogates from "\ud800" escapes) is refused.
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise SendRefused('"body" is not UTF-8 text') from None


def _check_content_type(content_type: object) -> None:
    if not isinstance(content_type, str):
        raise SendRefused('"content_type" must be a string')
    if len(content_type) > MAX_CONTENT_TYPE_CHARS or not _CONTENT_TYPE.fullmatch(content_type):
        raise SendRefused(
            f'"content_type" {excerpt(content_type, 60)!r} is not a media type '
            "(type/subtype, e.g. text/plain; charset=utf-8)"
        )
