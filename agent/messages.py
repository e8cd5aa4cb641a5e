"""Incoming SIP messages: the model, where a reply goes, and the record relayed to MQTT."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.sipuri import InvalidSipUri, parse_sip_uri


@dataclass(frozen=True)
class IncomingMessage:
    from_uri: str
    to_uri: str
    contact: str
    body: str
    content_type: str
    source: str  # "host:port" the request came from
    transport: str  # "udp" | "tcp" | "tls"
    received: datetime
    id: str

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
            id=str(uuid.uuid4()),
        )


@dataclass(frozen=True)
class CommandOutcome:
    """What became of a message read as a command (None in the record: not a command)."""

    name: str | None
    target: str | None
    result: str  # the reply text, "ok: …" / "error: …"


def reply_target(msg: IncomingMessage, *, routed: bool) -> str:
    """The URI a reply to `msg` is sent to.

    Through a proxy/registrar the sender's address of record is routable. Without one
    (direct mode) it usually is not, so answer where the request came from, as a
    response would: the Contact if it sent one, else its user at the source address.
    """
    if routed:
        return _strip_display(msg.from_uri)
    if msg.contact:
        return _strip_display(msg.contact)
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


def relay_record(
    msg: IncomingMessage, authorized: bool, outcome: CommandOutcome | None
) -> dict[str, Any]:
    """The JSON object published on `B/message/in` (the brief's schema)."""
    return {
        "id": msg.id,
        "from": msg.from_uri,
        "to": msg.to_uri,
        "body": msg.body,
        "content_type": msg.content_type,
        "received": msg.received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "authorized": authorized,
        "command": None
        if outcome is None
        else {"name": outcome.name, "target": outcome.target, "result": outcome.result},
    }


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
