"""Delivery notices (IMDN, RFC 5438): what a client asks for, what it reports, what we send.

Pure. A client asks in the CPIM headers of its message (`imdn.Message-ID`,
`imdn.Disposition-Notification: positive-delivery, display`); a notice is a message/cpim
whose content is `message/imdn+xml` with `Content-Disposition: notification`. Linphone 5.1
sends its notices deflated (`Content-Encoding: deflate`); agent.core.chat inflates them first.
"""

from __future__ import annotations

from agent.core import cpim
from agent.core.record import record

CONTENT_TYPE = "message/imdn+xml"
_XMLNS = "urn:ietf:params:xml:ns:imdn"
MAX_XML_BYTES = 4096
# RFC 5438 7.2.1: the statuses each kind of notification may carry.
_STATUSES = {
    "delivery-notification": ("delivered", "failed", "forbidden", "error"),
    "display-notification": ("displayed", "forbidden", "error"),
    "processing-notification": ("processed", "stored", "forbidden", "error"),
}


class ImdnError(ValueError):
    """A notice that cannot be read; the message says why."""


@record
class Request:
    """What the sender of a message asked to be told, and under which Message-ID."""

    message_id: str
    delivered: bool  # positive-delivery
    displayed: bool  # display
    datetime: str | None  # the message's DateTime, echoed in the notice


@record
class Notice:
    """A notice about one of our messages: "delivered", "displayed", "failed", ..."""

    message_id: str
    status: str


def request_of(message: cpim.Cpim) -> Request | None:
    """The notification request a CPIM message carries, or None when it asks for none."""
    asked = message.header("Disposition-Notification", cpim.IMDN_NS)
    message_id = cpim.message_id(message.header("Message-ID", cpim.IMDN_NS))
    if not asked or message_id is None:
        return None  # Linphone too skips a notice for a message without a Message-ID
    wanted = {part.strip().lower() for part in asked.split(",")}
    request = Request(
        message_id, "positive-delivery" in wanted, "display" in wanted, message.datetime
    )
    return request if request.delivered or request.displayed else None


def parse_notice(xml: bytes) -> Notice:
    """The message-id and status of an `<imdn>` document; ImdnError says why not."""
    # Imported here: only a client's delivery notice is parsed as XML, and most devices
    # never get one (xml.etree with pyexpat: 0.3 MB for the life of the service).
    import xml.etree.ElementTree as ET

    if len(xml) > MAX_XML_BYTES:
        raise ImdnError(f"longer than {MAX_XML_BYTES} bytes")
    if b"<!" in xml:
        # No DOCTYPE, no entity declarations: nothing that expands (billion laughs).
        raise ImdnError("declarations are not allowed in a notice")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise ImdnError(f"not XML: {err}") from None
    if root.tag != f"{{{_XMLNS}}}imdn":
        raise ImdnError(f"root element {root.tag[:80]!r} is not imdn")
    message_id = cpim.message_id(root.findtext(f"{{{_XMLNS}}}message-id"))
    if message_id is None:
        raise ImdnError("no usable message-id")
    for kind, statuses in _STATUSES.items():
        status = root.find(f"{{{_XMLNS}}}{kind}/{{{_XMLNS}}}status")
        if status is None:
            continue
        for child in status:
            name = child.tag.removeprefix(f"{{{_XMLNS}}}")
            if name in statuses:
                return Notice(message_id, name)
        raise ImdnError(f"{kind} without a known status")
    raise ImdnError("no notification in it")


def notice_xml(message_id: str, status: str, datetime: str) -> str:
    """The `<imdn>` document telling that message `message_id` was `status`.

    `message_id` passed `cpim.message_id` and `datetime` is RFC 3339 text: neither needs
    escaping.
    """
    kind = "display-notification" if status == "displayed" else "delivery-notification"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<imdn xmlns="{_XMLNS}"><message-id>{message_id}</message-id>'
        f"<datetime>{datetime}</datetime>"
        f"<{kind}><status><{status}/></status></{kind}></imdn>"
    )
