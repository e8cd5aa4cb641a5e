"""What a MESSAGE is, as chat clients send them: a message, a delivery notice, or typing. Pure.

Before the agent stores or obeys a MESSAGE it is read here: a deflated body is inflated
(bounded), a message/cpim wrapper (RFC 3862) is unwrapped so that the inner content type
decides (a command in text/plain inside CPIM is a command), a delivery notice (RFC 5438)
is told apart from a message, and an is-composing indication (RFC 3994) is never a message.
Nothing read here decides who sent it: the SIP From does, whatever the CPIM From says.
"""

from __future__ import annotations

import dataclasses
import zlib

from agent.core import cpim, imdn
from agent.core.messages import IncomingMessage
from agent.core.record import record

COMPOSING = "application/im-iscomposing+xml"
# A deflated body of 4000 bytes can unpack to megabytes: more than this is refused.
MAX_INFLATED_BYTES = 16384
_ENCODINGS = ("deflate", "gzip")


@record
class Reading:
    """A MESSAGE as the agent understands it."""

    kind: str  # "message" | "notice" | "composing"
    message: IncomingMessage  # for "message": unwrapped (inner body and content type)
    request: imdn.Request | None = None  # the notices its sender asked for
    notice: imdn.Notice | None = None  # for "notice": what it reports (None: unreadable)
    problem: str | None = None  # why it could not be read: relayed as is, never obeyed


def read(msg: IncomingMessage) -> Reading:
    """Read `msg`; never raises."""
    body = msg.raw_body if msg.raw_body is not None else msg.body.encode("utf-8")
    encoding = msg.content_encoding.strip().lower()
    if encoding and encoding != "identity":
        try:
            body = _inflate(body, encoding)
        except ValueError as err:
            return Reading("message", msg, problem=str(err))
        msg = dataclasses.replace(msg, body=body.decode("utf-8", "replace"))
    outer = media_type(msg.content_type)
    if outer == COMPOSING:
        return Reading("composing", msg)
    if outer == imdn.CONTENT_TYPE:
        return _notice(msg, body)
    if outer != cpim.CONTENT_TYPE:
        return Reading("message", msg)
    try:
        wrapped = cpim.parse(body)
    except cpim.CpimError as err:
        return Reading("message", msg, problem=f"message/cpim: {err}")
    inner = media_type(wrapped.content_type) or "text/plain"
    if inner == COMPOSING:
        return Reading("composing", msg)
    if inner == imdn.CONTENT_TYPE:
        return _notice(msg, wrapped.content)
    unwrapped = dataclasses.replace(
        msg,
        body=wrapped.text,
        content_type=wrapped.content_type or "text/plain",
        cpim_from=wrapped.sender,
    )
    if inner == cpim.CONTENT_TYPE:
        # One level is what clients send; a wrapper inside a wrapper is someone probing.
        return Reading("message", unwrapped, problem="message/cpim inside message/cpim")
    return Reading("message", unwrapped, request=imdn.request_of(wrapped))


def media_type(content_type: str) -> str:
    """`text/plain; charset=utf-8` -> `text/plain`."""
    return content_type.split(";", 1)[0].strip().lower()


def _notice(msg: IncomingMessage, xml: bytes) -> Reading:
    try:
        return Reading("notice", msg, notice=imdn.parse_notice(xml))
    except imdn.ImdnError as err:
        return Reading("notice", msg, problem=f"delivery notice: {err}")


def _inflate(data: bytes, encoding: str) -> bytes:
    if encoding not in _ENCODINGS:
        raise ValueError(f"Content-Encoding {encoding[:40]!r} is not deflate or gzip")
    # wbits 47: a zlib or a gzip header, whichever it has (Linphone sends zlib).
    inflater = zlib.decompressobj(wbits=47)
    try:
        out = inflater.decompress(data, MAX_INFLATED_BYTES)
    except zlib.error as err:
        raise ValueError(f"the {encoding} body does not inflate: {err}") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"the {encoding} body inflates to more than {MAX_INFLATED_BYTES} bytes")
    return out
