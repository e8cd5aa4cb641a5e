"""SIP URIs: parse the forms people write in configs and headers, compare identities."""

from __future__ import annotations

import ipaddress
import re
import string

from agent.core.record import record

DEFAULT_PORTS: dict[str, int] = {"sip": 5060, "sips": 5061}

_ALNUM = string.ascii_letters + string.digits
# RFC 3261 25.1: user = unreserved / escaped / user-unreserved
_USER_CHARS = frozenset(_ALNUM + "-_.!~*'()" + "%" + "&=+$,;?/")
# RFC 3261 25.1: paramchar = param-unreserved / unreserved / escaped
_PARAM_CHARS = frozenset(_ALNUM + "-_.!~*'()" + "%" + "[]/:&+$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


class InvalidSipUri(ValueError):
    """Text that is not a SIP URI; the message quotes it and says why."""


@record
class SipUri:
    """A parsed sip: or sips: URI (headers and display name are not kept)."""

    scheme: str
    user: str | None
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        params = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self.params)
        return f"{self.scheme}:{user}{self.hostport}{params}"

    @property
    def hostport(self) -> str:
        """`host` or `host:port`."""
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse_sip_uri(text: str) -> SipUri:
    """Parse `sip:u@h`, `<sip:u@h;lr>` or `"Name" <sip:u@h>;tag=x`; raise InvalidSipUri."""
    stripped = text.strip()
    return _parse_bare(_unwrap_name_addr(stripped), stripped)


def address_of_record(text: str) -> str:
    """The identity to compare senders by: `scheme:user@host`, default port and params dropped."""
    uri = parse_sip_uri(text)
    port = None if uri.port == DEFAULT_PORTS[uri.scheme] else uri.port
    return str(SipUri(uri.scheme, uri.user, uri.host, port))


def _fail(text: str, reason: str | None = None) -> InvalidSipUri:
    suffix = f" ({reason})" if reason else ""
    return InvalidSipUri(f"not a SIP URI: {text!r}{suffix}")


def _unwrap_name_addr(text: str) -> str:
    """Return the URI inside `[display-name] <uri> [;header-params]`, or the text itself."""
    if text.startswith('"'):
        end = _closing_quote(text)
        if end < 0:
            raise _fail(text, "unterminated display name")
        rest = text[end + 1 :].lstrip()
        if not rest.startswith("<"):
            raise _fail(text, "expected '<' after the display name")
    elif "<" in text:
        display, rest = text[: text.index("<")], text[text.index("<") :]
        if any(c in display for c in '">'):
            raise _fail(text, "bad display name")
    elif ">" in text:
        raise _fail(text, "'>' without '<'")
    else:
        return text
    close = rest.find(">")
    if close < 0:
        raise _fail(text, "missing '>'")
    after = rest[close + 1 :].strip()
    if after and not after.startswith(";"):
        raise _fail(text, f"unexpected text after '>': {after!r}")
    return rest[1:close]


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


def _parse_bare(uri: str, original: str) -> SipUri:
    if any(c.isspace() for c in uri):
        raise _fail(original, "contains whitespace")
    scheme, colon, rest = uri.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in DEFAULT_PORTS:
        raise _fail(original)

    user: str | None = None
    if "@" in rest:
        user, _, rest = rest.partition("@")
        _check_user(user, original)
    rest = rest.partition("?")[0]  # headers (?subject=...) are not part of the identity
    hostport, semicolon, param_text = rest.partition(";")
    host, port = _split_hostport(hostport, original)
    params = _parse_params(param_text, original) if semicolon else ()
    return SipUri(scheme, user, host, port, params)


def _check_user(user: str, original: str) -> None:
    if not user:
        raise _fail(original, "empty user part")
    if ":" in user:
        raise _fail(original, "passwords in SIP URIs are not supported")
    bad = sorted(set(user) - _USER_CHARS)
    if bad:
        raise _fail(original, f"bad character {bad[0]!r} in the user part")
    if _BAD_ESCAPE.search(user):
        raise _fail(original, "bad %-escape in the user part")


def _split_hostport(hostport: str, original: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise _fail(original, "missing ']' after IPv6 address")
        try:
            address = ipaddress.IPv6Address(hostport[1:close])
        except ValueError:
            raise _fail(original, f"bad IPv6 address {hostport[: close + 1]!r}") from None
        host, after = f"[{address.compressed}]", hostport[close + 1 :]
        if after and not after.startswith(":"):
            raise _fail(original, f"unexpected text after the host: {after!r}")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        host = host.lower()
        port_text = port_text_raw if colon else None
        if not host:
            raise _fail(original, "empty host")
        _check_hostname(host, original)
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise _fail(original, f"bad port {port_text!r}")
    return host, int(port_text)


def _check_hostname(host: str, original: str) -> None:
    labels = host.removesuffix(".").split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise _fail(original, f"bad host {host!r}")
    if len(labels) == 4 and all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _fail(original, f"bad IPv4 address {host!r}") from None


def _parse_params(text: str, original: str) -> tuple[tuple[str, str | None], ...]:
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, equals, value = item.partition("=")
        if not name or (equals and not value):
            raise _fail(original, f"empty parameter {item!r}" if item else "empty parameter")
        bad = sorted(set(name + value) - _PARAM_CHARS)
        if bad or _BAD_ESCAPE.search(item):
            raise _fail(original, f"bad character in parameter {item!r}")
        params.append((name.lower(), value if equals else None))
    return tuple(params)
