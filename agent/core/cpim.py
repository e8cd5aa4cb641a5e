"""message/cpim (RFC 3862) as chat clients wrap their messages: read and written. Pure.

Linphone wraps every chat message in CPIM once `cpim_in_basic_chat_rooms_enabled` is on,
and puts its delivery-notification request (IMDN, RFC 5438) into the CPIM headers:

    From: <sip:owner@pbx.example.org>
    To: <sip:porch@pbx.example.org>
    DateTime: 2026-12-01T03:23:24Z
    NS: imdn <urn:ietf:params:imdn>
    imdn.Message-ID: Fo8k6As19CJd
    imdn.Disposition-Notification: positive-delivery, negative-delivery, display

    Content-Type: text/plain
    Content-Length: 7

    on lamp

A stranger writes every byte of it, so nothing here raises for any input but `CpimError`,
every part is bounded, and nothing read here decides who the sender is (the SIP From does).
"""

from __future__ import annotations

import re

from agent.core.record import record
from agent.core.siptext import clean

CONTENT_TYPE = "message/cpim"
IMDN_NS = "urn:ietf:params:imdn"
# Bounds on what a stranger can make the agent read. A SIP MESSAGE holds at most about
# 4000 bytes (PJSIP_MAX_PKT_LEN), a deflated one unpacks to more: agent.core.chat caps that.
MAX_HEADERS = 32  # in each of the two header blocks
MAX_HEADER_CHARS = 1000  # one header line
MAX_FIELD_CHARS = 256  # a From, To or DateTime value kept for the record
MAX_MESSAGE_ID_CHARS = 128
_NS = re.compile(r"\s*(?:([A-Za-z0-9_-]+)\s+)?<([^<>]*)>\s*")
# RFC 5438 7.1.1.1: a Message-ID is a token; what we echo into XML must need no escaping.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


class CpimError(ValueError):
    """A message/cpim body that cannot be read; the message says why."""


@record
class Cpim:
    """One unwrapped CPIM message: its headers, the inner content type and content."""

    headers: tuple[tuple[str, str], ...]  # message headers, names as written, in order
    namespaces: tuple[tuple[str, str], ...]  # (prefix, urn); "" is the default namespace
    content_type: str  # the inner MIME type, e.g. "text/plain" ("" when none was given)
    content_headers: tuple[tuple[str, str], ...]  # the inner MIME headers (lower-case names)
    content: bytes

    def header(self, name: str, urn: str = "") -> str | None:
        """The first message header `name` (case-insensitive) in namespace `urn`."""
        prefixes = {p for p, u in self.namespaces if u == urn} if urn else {""}
        for written, value in self.headers:
            prefix, _, local = written.rpartition(".")
            if prefix in prefixes and local.lower() == name.lower():
                return value
        return None

    @property
    def sender(self) -> str:
        """The CPIM From as written (bounded): recorded, never trusted."""
        return (self.header("From") or "")[:MAX_FIELD_CHARS]

    @property
    def datetime(self) -> str | None:
        """The DateTime header when it is RFC 3339 text, else None."""
        value = (self.header("DateTime") or "").strip()
        return value if _DATETIME.fullmatch(value) else None

    @property
    def text(self) -> str:
        """The content as text (bytes that were not UTF-8 as U+FFFD)."""
        return clean(self.content.decode("utf-8", "replace"))


def parse(body: bytes) -> Cpim:
    """Read a message/cpim body; CpimError says why it cannot be read."""
    head, rest = _split(body, "the message headers")
    headers = _headers(head, "message")
    content_head, content = _split(rest, "the content headers")
    inner = tuple((n.lower(), v) for n, v in _headers(content_head, "content"))
    namespaces = []
    for name, value in headers:
        if name.lower() == "ns":
            match = _NS.fullmatch(value)
            if match is None:
                raise CpimError(f"NS header {value[:60]!r} is not 'prefix <urn>'")
            namespaces.append((match.group(1) or "", match.group(2).strip()))
    content_type = next((v for n, v in inner if n == "content-type"), "")
    declared = next((v.strip() for n, v in inner if n == "content-length"), None)
    if declared is not None:
        if not (declared.isascii() and declared.isdigit() and len(declared) < 10):
            raise CpimError(f"Content-Length {declared[:20]!r} is not a number")
        if int(declared) > len(content):
            raise CpimError(f"content shorter than its Content-Length ({declared})")
        content = content[: int(declared)]
    return Cpim(tuple(headers), tuple(namespaces), content_type.strip(), inner, content)


def message_id(text: str | None) -> str | None:
    """`text` as an IMDN Message-ID we may echo, or None when it is not one."""
    value = (text or "").strip()
    ok = len(value) <= MAX_MESSAGE_ID_CHARS and _MESSAGE_ID.fullmatch(value)
    return value if ok else None


def build(
    sender: str,
    recipient: str,
    content_type: str,
    content: str,
    *,
    datetime: str,
    imdn: tuple[tuple[str, str], ...] = (),
    content_headers: tuple[tuple[str, str], ...] = (),
) -> str:
    """A message/cpim body from `sender` to `recipient` (URIs) with the IMDN headers given
    as (name, value) pairs without their prefix, e.g. ("Message-ID", "x1")."""
    lines = [f"From: <{sender}>", f"To: <{recipient}>", f"DateTime: {datetime}"]
    if imdn:
        lines.append(f"NS: imdn <{IMDN_NS}>")
        lines += [f"imdn.{name}: {value}" for name, value in imdn]
    size = len(content.encode("utf-8"))
    inner = [f"Content-Type: {content_type}", *(f"{n}: {v}" for n, v in content_headers)]
    inner.append(f"Content-Length: {size}")
    return "\r\n".join(lines) + "\r\n\r\n" + "\r\n".join(inner) + "\r\n\r\n" + content


def _split(data: bytes, what: str) -> tuple[str, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        index = data.find(sep)
        if index >= 0:
            head = data[:index].decode("utf-8", "replace")
            return head, data[index + len(sep) :]
    raise CpimError(f"no blank line after {what}")


def _headers(block: str, what: str) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in block.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if len(line) > MAX_HEADER_CHARS:
            raise CpimError(f"a {what} header longer than {MAX_HEADER_CHARS} characters")
        if len(headers) == MAX_HEADERS:
            raise CpimError(f"more than {MAX_HEADERS} {what} headers")
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or any(c in name for c in " \t"):
            raise CpimError(f"{clean(line[:60])!r} is not a header")
        headers.append((clean(name), clean(value.strip())))
    return headers
