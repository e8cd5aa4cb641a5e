"""Reading a raw SIP request as a stranger sent it: request line, headers, body. Pure.

pjsip has already parsed what reaches us, but pjsua2 hands the application only a few
fields; the request gate (agent.core.gate) and the relay need more (Via parameters, Contact and
Record-Route hosts, Expires, Content-Length). Nothing here raises for any input: headers that
cannot be read are simply absent, and every string is clean (agent.core.siptext).
"""

from __future__ import annotations

import re

from agent.core.record import record
from agent.core.siptext import clean

# RFC 3261 7.3.3 and the event framework's compact forms.
_COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
}
# Headers whose values may be comma-separated lists of entries (RFC 3261 7.3.1).
_LISTS = frozenset({"via", "contact", "record-route", "route"})
_TAG = re.compile(r";\s*tag\s*=\s*([^;,\s]+)", re.IGNORECASE)
_PARAM = re.compile(r";\s*([A-Za-z0-9._!~*'%+`-]+)\s*(?:=\s*(\"[^\"]*\"|[^;,\s]*))?")
# Bounds on what a stranger can make us hold while deciding (a TCP message can be long).
MAX_HEADERS = 200
MAX_LIST_ENTRIES = 32


@record
class SipRequest:
    """A SIP request as received: method, URI, headers and body."""

    method: str  # as sent, upper-cased: "MESSAGE", "INVITE", "FOO"
    uri: str
    headers: tuple[tuple[str, str], ...]  # (long lower-case name, value), in order
    body: bytes

    def first(self, name: str) -> str | None:
        """The first value of header `name` (long form, lower case), or None."""
        return next((v for n, v in self.headers if n == name), None)

    def all(self, name: str) -> list[str]:
        """Every value of header `name`, list entries split apart, in order."""
        values: list[str] = []
        for n, v in self.headers:
            if n == name:
                values.extend(split_list(v) if name in _LISTS else [v])
        return values[:MAX_LIST_ENTRIES]

    @property
    def to_tag(self) -> str | None:
        """The To tag: present on requests inside a dialog."""
        return header_tag(self.first("to") or "")

    @property
    def content_length(self) -> int | None:
        """Content-Length as declared, or None when absent or not a number."""
        text = (self.first("content-length") or "").strip()
        return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None

    @property
    def truncated(self) -> bool:
        """The body is shorter than its Content-Length says: it was cut on the way in."""
        declared = self.content_length
        return declared is not None and len(self.body) < declared

    @property
    def expires(self) -> int | None:
        text = (self.first("expires") or "").strip()
        return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None

    def key(self) -> str | None:
        """Call-ID, CSeq and From tag: what a request's retransmissions share."""
        call_id, cseq = self.first("call-id"), self.first("cseq")
        if not call_id or not cseq:
            return None
        from_tag = header_tag(self.first("from") or "") or ""
        return f"{call_id}|{' '.join(cseq.split())}|{from_tag}"


def parse_request(raw: bytes | str) -> SipRequest | None:
    """The request in `raw`, or None when it is not a SIP request at all."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape")
    text = clean(text)
    head, body = _split_body(text)
    lines = _unfold(head.split("\n"))
    if not lines:
        return None
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].upper().startswith("SIP/"):
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1 : MAX_HEADERS + 1]:
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or " " in name:
            continue
        headers.append((_COMPACT.get(name, name), value.strip()))
    raw_body = body.encode("utf-8", "surrogateescape") if isinstance(raw, str) else _body(raw)
    return SipRequest(parts[0].upper(), parts[1], tuple(headers), raw_body)


def _split_body(text: str) -> tuple[str, str]:
    for sep in ("\r\n\r\n", "\n\n"):
        if sep in text:
            head, body = text.split(sep, 1)
            return head.replace("\r\n", "\n"), body
    return text.replace("\r\n", "\n"), ""


def _body(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in raw:
            return raw.split(sep, 1)[1]
    return b""


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (leading whitespace) to the header they continue."""
    out: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and out:
            out[-1] += " " + line.strip()
        elif line:
            out.append(line)
    return out


def split_list(value: str) -> list[str]:
    """Entries of a comma-separated header value; commas in quotes or <...> do not split."""
    entries, start, quoted, angle = [], 0, False, False
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "<>":
            angle = ch == "<"
        elif ch == "," and not quoted and not angle:
            entries.append(value[start:i].strip())
            start = i + 1
    entries.append(value[start:].strip())
    return [e for e in entries if e]


def header_tag(value: str) -> str | None:
    """The tag parameter of a From/To value (after the closing '>' when there is one)."""
    match = _TAG.search(value.rsplit(">", 1)[-1])
    return match.group(1) if match else None


def params_of(value: str) -> dict[str, str]:
    """The header parameters of one entry (after '>' for name-addr), lower-case names."""
    tail = value.rsplit(">", 1)[-1] if ">" in value else value
    if ";" not in tail:
        return {}
    tail = ";" + tail.split(";", 1)[1]
    return {m.group(1).lower(): (m.group(2) or "").strip('"') for m in _PARAM.finditer(tail)}


def uri_host(value: str) -> str | None:
    """The host of the URI in a Contact/Record-Route entry, or None if there is none."""
    inner = value
    if "<" in value:
        inner = value.split("<", 1)[1].split(">", 1)[0]
    scheme, sep, rest = inner.partition(":")
    if not sep or scheme.strip().lower() not in ("sip", "sips"):
        return None
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    return host_of(rest.rsplit("@", 1)[-1]) or None


def host_of(hostport: str) -> str:
    """`host` of `host:port` (IPv6 in brackets keeps its brackets off)."""
    hostport = hostport.strip()
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport.split(":", 1)[0].lower()
