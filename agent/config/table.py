"""Reading one TOML table key by key, noting problems instead of stopping.

A key that is read is a known key; whatever is left in a table afterwards is reported as
unknown, with the closest known key as a suggestion. Every section reader
(agent.config.load and its config_* companions) works through `Table`.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any

from agent.core.sipuri import InvalidSipUri, SipUri, parse_sip_uri

# Names that end up in MQTT topics and unique ids.
NAME = re.compile(r"[a-z0-9_-]+")
# An MQTT identity for access rules (mqtt.identity), as written in access lists.
MQTT_IDENTITY = re.compile(r"mqtt:[A-Za-z0-9_.-]+")

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")

_TOML_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),  # before int: bool is an int subclass
    (str, "string"),
    (int, "integer"),
    (float, "float"),
    (list, "array"),
    (dict, "table"),
    ((datetime.date, datetime.time), "date/time"),
)


def read_secret(t: Table, key: str, base_dir: str | None) -> tuple[str | None, str]:
    """`key` inline, or the contents of `<key>_file` (looked up in systemd's credentials
    directory first): the secret, and the key it came from (for problems about its value)."""
    inline = t.text(key)
    file_key = f"{key}_file"
    file = t.text(file_key)
    if inline is not None and file is not None:
        t.problem(key, f"set either {key} or {file_key}, not both")
        return None, key
    if file is None:
        return inline, key
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and not os.path.isabs(file):
        # systemd names a credential loaded from a directory (LoadCredential=totp:/etc/
        # sipagent/totp) "<id>_<file>": "totp/alice" is the credential "totp_alice".
        file = file.replace("/", "_")
    path = resolve_path(file, credentials or base_dir)
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read()
    except OSError as err:
        t.problem(file_key, f"cannot read {path!r}: {err.strerror or err}")
        return None, file_key
    except UnicodeDecodeError:
        t.problem(file_key, f"{path!r} is not UTF-8 text")
        return None, file_key
    if secret.endswith("\n"):  # editors and `echo` add one; the secret itself has none
        secret = secret.removesuffix("\n").removesuffix("\r")
    if not secret:
        t.problem(file_key, f"{path!r} is empty")
    return secret, file_key


def existing_file(t: Table, key: str, base_dir: str | None) -> str | None:
    path = t.text(key)
    if path is None:
        return None
    path = resolve_path(path, base_dir)
    if not os.path.isfile(path):
        t.problem(key, f"no such file {path!r}")
    return path


def default_of(model: type, field: str) -> Any:
    """The default the config model (agent.config.model) gives `field`: the one place it is set."""
    found = next(f for f in dataclasses.fields(model) if f.name == field)
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    assert found.default is not dataclasses.MISSING, f"{model.__name__}.{field} has no default"
    return found.default


def split_host_port(text: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port" into a bind address (no brackets) and a port."""
    not_host_port = ValueError(f"{text!r} is not host:port (e.g. '0.0.0.0:5060' or '[::1]:5060')")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not _is_ip(host, version=6):
            raise not_host_port
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host or not is_host(host):  # IPv6 needs brackets
            raise not_host_port
    if not (port.isascii() and port.isdigit()):
        raise not_host_port
    if int(port) > 65535:
        raise ValueError(f"port {port} is out of range 0..65535")
    return host, int(port)


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def is_host(text: str) -> bool:
    """True for an IP address or a DNS host name."""
    return _is_ip(text) or (len(text) <= 253 and _HOSTNAME.fullmatch(text) is not None)


def resolve_path(path: str, base_dir: str | None) -> str:
    return path if os.path.isabs(path) or not base_dir else os.path.join(base_dir, path)


def _is_a(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # TOML booleans are not integers
        return bool in types
    return isinstance(value, types)


def type_name(value: object) -> str:
    return next((name for kind, name in _TOML_TYPES if isinstance(value, kind)), "value")


class Table:
    """One TOML table being read: typed getters note problems and return defaults instead."""

    def __init__(self, problems: list[str], path: str, raw: Mapping[str, Any]) -> None:
        self.problems = problems
        self.path = path
        self.raw = raw
        self._known: list[str] = []

    @classmethod
    def detached(cls, path: str) -> Table:
        """An empty stand-in for a missing table whose absence was already reported."""
        return cls([], path, {})

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where(key)}: {message}")

    def value(
        self, key: str, expected: str, types: tuple[type, ...], required: bool = False
    ) -> Any:
        """The value of `key` if its type is one of `types`; None if absent or wrong."""
        self._known.append(key)
        if key not in self.raw:
            if required:
                self.problem(key, f"required {'table' if dict in types else 'key'} is missing")
            return None
        value = self.raw[key]
        if not _is_a(value, types):
            self.problem(key, f"{expected} expected, got {type_name(value)}")
            return None
        return value

    def text(
        self,
        key: str,
        default: str | None = None,
        *,
        required: bool = False,
        empty_ok: bool = False,
    ) -> str | None:
        value = self.value(key, "string", (str,), required)
        if value == "" and not empty_ok:
            self.problem(key, "must not be empty")
            return default
        return default if value is None else value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key)
        if value is None:
            return default
        if value.lower() not in choices:
            self.problem(key, f"{value!r} is not one of: {', '.join(choices)}")
            return default
        return value.lower()

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.value(key, "integer", (int,))
        if value is None:
            return default
        if not low <= value <= high:
            self.problem(key, f"{value} is out of range {low}..{high}")
            return default
        return int(value)

    def duration(self, key: str, default: float, low: float, high: float) -> float:
        """A duration: "500ms", "2s", "1m", or a number of seconds."""
        from agent.core.durations import InvalidDuration, parse_duration

        value = self.value(key, "duration (e.g. '2s') or seconds", (str, int, float))
        if value is None:
            return default
        try:
            seconds = parse_duration(value) if isinstance(value, str) else float(value)
        except InvalidDuration as err:
            self.problem(key, str(err))
            return default
        if not low <= seconds <= high:
            self.problem(key, f"{value!r} is out of range {low:g}s..{high:g}s")
            return default
        return seconds

    def size(self, key: str, default: int, low: int, high: int) -> int:
        """Bytes: an integer, or text such as "16M" (agent.core.sizes)."""
        from agent.core.sizes import InvalidSize, format_size, parse_size

        value = self.value(key, 'size (e.g. "16M") or integer', (str, int))
        if value is None:
            return default
        try:
            size = parse_size(value)
        except InvalidSize as err:
            self.problem(key, str(err))
            return default
        if not low <= size <= high:
            self.problem(key, f"{value} is out of range {format_size(low)}..{format_size(high)}")
            return default
        return size

    def flag(self, key: str, default: bool) -> bool:
        value = self.value(key, "boolean", (bool,))
        return default if value is None else bool(value)

    def on_off(self, key: str, default: bool) -> bool:
        value = self.value(key, "'on', 'off' or a boolean", (str, bool))
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if value.lower() not in ("on", "off", "true", "false"):
            self.problem(key, f"{value!r} is not one of: on, off")
            return default
        return value.lower() in ("on", "true")

    def texts(self, key: str) -> list[tuple[str, str]]:
        """(key path, string) for each item of an array of strings."""
        items = self.value(key, "array of strings", (list,)) or []
        found: list[tuple[str, str]] = []
        for i, item in enumerate(items):
            path = f"{self.where(key)}[{i}]"
            if isinstance(item, str):
                found.append((path, item))
            else:
                self.problems.append(f"{path}: string expected, got {type_name(item)}")
        return found

    def sip_uri(self, key: str, *, required: bool = False) -> SipUri | None:
        text = self.text(key, required=required)
        if text is None:
            return None
        try:
            return parse_sip_uri(text)
        except InvalidSipUri as err:
            self.problem(key, str(err))
            return None

    def empty(self, key: str) -> Table:
        """An absent optional sub-table: its defaults may still have problems to report."""
        return Table(self.problems, self.where(key), {})

    def table(self, key: str, *, required: bool = False) -> Table | None:
        raw = self.value(key, "table", (dict,), required)
        return None if raw is None else Table(self.problems, self.where(key), raw)

    def tables(self, key: str) -> list[tuple[str, Table]]:
        """The named sub-tables of `key` (e.g. gpio.outputs.<name>), in file order."""
        outer = self.table(key)
        if outer is None:
            return []
        found: list[tuple[str, Table]] = []
        for name in outer.raw:
            sub = outer.table(name)
            if sub is None:
                continue
            if not NAME.fullmatch(name):
                outer.problem(name, "name must match [a-z0-9_-]+")
            found.append((name, sub))
        return found

    def finish(self) -> None:
        """Report every key that no getter asked for."""
        for key, value in self.raw.items():
            if key in self._known:
                continue
            kind = "unknown table" if not self.path and isinstance(value, dict) else "unknown key"
            import difflib  # only for a typo: not worth its memory in every run

            close = difflib.get_close_matches(key, self._known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problem(key, kind + hint)
