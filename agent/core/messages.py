"""Incoming SIP messages: the model, where a reply goes, and the record relayed to MQTT."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from agent.core.record import record
from agent.core.sipuri import InvalidSipUri, parse_sip_uri


@record
class IncomingMessage:
    """A received SIP MESSAGE, as the agent handles and relays it."""

    from_uri: str
    to_uri: str
    contact: str
    body: str
    content_type: str
    source: str  # "host:port" the request came from
    transport: str  # "udp" | "tcp" | "tls"
    received: datetime
    id: str
    # Identifies the SIP request (Call-ID, CSeq, From tag): a retransmission has the same.
    request_key: str | None = None
    # The body arrived shorter than its Content-Length (over UDP pjsip reads 4000 bytes).
    truncated: bool = False
    # The body's bytes as they came (agent.core.chat inflates and unwraps from these) and its
    # Content-Encoding; None: `body` is all there is.
    raw_body: bytes | None = None
    content_encoding: str = ""
    # The From inside a message/cpim wrapper: recorded beside the SIP From, never trusted.
    cpim_from: str | None = None
    account: str = "main"  # the SIP account it came in on ([[sip.accounts]]); replies too

    @classmethod
    def new(
        cls,
        *,
        from_uri: str,
        to_uri: str,
        contact: str,
        body: str,
        content_type: str,
        source: str,
        transport: str,
        received: datetime | None = None,
        request_key: str | None = None,
        truncated: bool = False,
        raw_body: bytes | None = None,
        content_encoding: str = "",
        account: str = "main",
        message_id: str | None = None,
    ) -> IncomingMessage:
        return cls(
            from_uri=from_uri,
            to_uri=to_uri,
            contact=contact,
            body=body,
            content_type=content_type or "text/plain",
            source=source,
            transport=transport,
            received=received or datetime.now(UTC),
            id=message_id or new_id(),
            request_key=request_key,
            truncated=truncated,
            raw_body=raw_body,
            content_encoding=content_encoding,
            account=account,
        )


def new_id() -> str:
    """A fresh message id (the `id` of B/message/in)."""
    return str(uuid.uuid4())


_TAG = re.compile(r";\s*tag\s*=\s*([^;,\s]+)", re.IGNORECASE)


def request_key(raw: str) -> str | None:
    """Call-ID, CSeq and From tag of a raw SIP request: what its retransmissions share."""
    head = raw.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    call_id = cseq = None
    from_tag = ""
    for line in head.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        if name in ("call-id", "i"):
            call_id = value
        elif name == "cseq":
            cseq = " ".join(value.split())
        elif name in ("from", "f"):
            # The tag is a header parameter: after the closing '>' when there is one.
            params = value.rsplit(">", 1)[-1]
            match = _TAG.search(params)
            from_tag = match.group(1) if match else ""
    if not call_id or not cseq:
        return None
    return f"{call_id}|{cseq}|{from_tag}"


@record
class CommandOutcome:
    """What became of a message read as a command (None in the record: not a command)."""

    name: str | None
    target: str | None
    result: str  # the reply text, "ok: …" / "error: …"


def reply_target(msg: IncomingMessage, *, routed: bool) -> str:
    """The URI a reply to `msg` is sent to.

    Through a proxy/registrar the sender's address of record is routable, and only the
    proxy's host is ever looked up. Without one (direct mode) the reply goes back where the
    request came from, as a response would: the sender's user at the source address. Never
    to the Contact: a stranger writes what they like there, a name that would be resolved
    on the owner thread (and hang it), or someone else's address to flood.
    """
    if routed:
        return _strip_display(msg.from_uri)
    try:
        user = parse_sip_uri(msg.from_uri).user
    except InvalidSipUri:
        user = None
    at = f"{user}@" if user else ""
    suffix = "" if msg.transport == "udp" else f";transport={msg.transport}"
    return f"sip:{at}{msg.source}{suffix}"


def _strip_display(uri: str) -> str:
    try:
        return str(parse_sip_uri(uri))
    except InvalidSipUri:
        return uri.strip().strip("<>")


def record_time(when: datetime) -> str:
    """How every MQTT record writes a time: UTC, milliseconds, `Z` (2026-01-02T03:04:05.006Z)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def relay_record(
    msg: IncomingMessage, authorized: bool, outcome: CommandOutcome | None
) -> dict[str, Any]:
    """The JSON object published on `B/message/in` (its schema: README "MQTT topics")."""
    return {
        "id": msg.id,
        "from": msg.from_uri,
        "cpim_from": msg.cpim_from,
        "to": msg.to_uri,
        "body": msg.body,
        "content_type": msg.content_type,
        "received": record_time(msg.received),
        "authorized": authorized,
        "truncated": msg.truncated,
        "command": None
        if outcome is None
        else {"name": outcome.name, "target": outcome.target, "result": outcome.result},
    }


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
