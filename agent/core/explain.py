"""`sipagent check-config --explain`: what a config means, for the person who wrote it.

Pure: the loaded Config and the raw TOML it came from in, lines of text out. Three parts:
every effective value (marked `(default)` where the file does not set it; secrets only as
"set"), who may do what, and which MQTT topics and Home Assistant entities will exist.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, cast

from agent.config.model import Config, SipConfig, UserRights
from agent.core import discovery
from agent.core.reload import KEY_OF_FIELD
from agent.core.topics import Topics, ha_status_topic

SECRET_FIELDS = ("password", "totp_secret")
# Shown under "who may do what" instead.
HIDDEN = {"users"}


def explain(config: Config, raw: Mapping[str, Any]) -> list[str]:
    lines = [f"# {config.source}: effective values; (default) = not set in the file"]
    for field in dataclasses.fields(config):
        if field.name == "more_accounts":
            # Each [[sip.accounts]] entry like [sip] itself (secrets only as "set").
            entries = raw.get("sip", {}).get("accounts", [])
            for i, account in enumerate(config.more_accounts):
                entry = entries[i] if i < len(entries) else {}
                lines += _values(f"sip.accounts[{i}]", account, entry)
        elif field.name != "source":
            lines += _values(field.name, getattr(config, field.name), raw.get(field.name, {}))
    lines += ["", "# who may do what", *rights(config)]
    lines += ["", "# MQTT topics", *topics(config)]
    return lines


# -- effective values ---------------------------------------------------------------------


def _values(path: str, value: Any, raw: Any) -> list[str]:
    raw = raw if isinstance(raw, Mapping) else {}
    if value is None:
        return [f"{path} = (none)" + ("" if raw else "  (default)")]
    if not dataclasses.is_dataclass(value):
        return [_line(path, value, raw_set=True)]
    lines: list[str] = []
    for field in dataclasses.fields(value):
        name, item = field.name, getattr(value, field.name)
        key = KEY_OF_FIELD.get(name, name)
        if name == "active_high" and ".inputs." in path:
            key = "active_state"  # an input's level is written "high" / "low"
            item = None if item is None else ("high" if item else "low")
        where = f"{path}.{key}"
        if name in SECRET_FIELDS:
            lines.append(f"{where} = {'(set)' if item else '(none)'}")
        elif name == "listen_host":
            host = f"[{item}]" if ":" in item else item
            port = cast(SipConfig, value).listen_port  # listen_host is a SipConfig's only
            lines.append(_line(where, f"{host}:{port}", raw_set=key in raw))
        elif name == "listen_port":
            continue
        elif name == "watch":
            lines += [_line(f"{where}.{w.id}", w.uri, raw_set=True) for w in item]
        elif name in ("outputs", "inputs") and isinstance(item, tuple):
            sub = raw.get(name, {}) if isinstance(raw.get(name), Mapping) else {}
            for entry in item:
                lines += _entry(f"{where}.{entry.name}", entry, sub.get(entry.name, {}))
        elif dataclasses.is_dataclass(item):
            lines += _values(where, item, raw.get(key, {}))
        elif name not in HIDDEN:
            lines.append(_line(where, item, raw_set=key in raw))
    return lines


def _entry(path: str, entry: Any, raw: Any) -> list[str]:
    raw = raw if isinstance(raw, Mapping) else {}
    return [line for line in _values(path, entry, raw) if not line.startswith(f"{path}.name ")]


def _line(where: str, value: Any, *, raw_set: bool) -> str:
    return f"{where} = {_show(value)}" + ("" if raw_set else "  (default)")


def _show(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        shown = {k: v for k, v in dataclasses.asdict(value).items() if v not in (None, "")}
        return json.dumps(shown, default=str)
    if isinstance(value, tuple):  # brokers show as "host:port"
        return json.dumps([str(v) if dataclasses.is_dataclass(v) else v for v in value])
    return json.dumps(value, default=str)


# -- rights -------------------------------------------------------------------------------


def rights(config: Config) -> list[str]:
    access = config.access
    outputs = [o.name for o in config.gpio.outputs]
    lines = [f"{who}: every command, every output (access.allow)" for who in access.allow]
    lines += [f"{user.identity}: {_rights_of(user, outputs)}" for user in access.users]
    if config.mqtt is not None:
        identity = config.mqtt.identity
        known = access.rights_of(identity) is not None
        lines.append(
            f"{identity} (B/command, group commands, Home Assistant's buttons): "
            + ("as listed above" if known else f"nothing (add {identity!r} to access.allow)")
        )
        lines.append(
            "B/output/<name>/set, B/presence/set and Home Assistant's switches, lights and "
            "presence: whoever may publish there (trusted: protect them with broker ACLs)"
        )
    answer = "no answer" if access.on_forbidden == "silent" else "'error: forbidden'"
    lines.append(f"anyone else: refused with {answer}; nothing changes")
    if access.require_code:
        lines.append(
            f"one-time code needed for: {', '.join(access.require_code)} (everyone, "
            "access.allow included; users without totp_secret cannot move them)"
        )
    lines.append(
        f"rate: {access.rate_burst} commands at once, then {access.rate_per_minute} a minute per "
        f"sender; bodies over {access.max_message_bytes} bytes are no commands"
    )
    calls = config.calls
    action = f"; callers who may run it get {calls.action!r} first" if calls.action else ""
    lines.append(f"calls: rejected with {calls.reject_code}{action}")
    if config.sip.presence == "serve":
        watchers = config.presence.watchers
        who = ", ".join(watchers if watchers is not None else access.allow) or "nobody"
        lines.append(f"presence watchers (SUBSCRIBE): {who}")
    return lines


def _rights_of(user: UserRights, outputs: list[str]) -> str:
    commands = "every command" if user.commands is None else "help, " + ", ".join(user.commands)
    outs = "every output" if user.outputs is None else ", ".join(user.outputs) or "no output"
    code = "one-time code set up" if user.totp_secret else "no one-time code"
    return f"{commands}; {outs}; {code}"


# -- topics -------------------------------------------------------------------------------


def topics(config: Config) -> list[str]:
    mqtt = config.mqtt
    if mqtt is None:
        return ["none: no [mqtt] broker configured"]
    t = Topics.of(mqtt)
    brokers = ", ".join(str(b) for b in mqtt.brokers) or f"{mqtt.host}:{mqtt.port}"
    outs = [o.name for o in config.gpio.outputs]
    ins = [i.name for i in config.gpio.inputs]
    rows: list[tuple[str, str, str]] = [
        ("out", t.availability, "retained, will: online / offline"),
        ("out", t.registration, "retained: registration state, public address"),
        *(
            ("out", t.account_registration(a.name), f"retained: registration of {a.name}")
            for a in (config.accounts if config.more_accounts else ())
        ),
        ("out", t.presence_state, "retained: {status, note}"),
        ("out", t.diagnostics, "retained: pjproject, outdated, last error"),
        ("out", t.outbox, "retained: outbox depth and losses"),
        ("out", t.message_in, "each MESSAGE received (outbox, QoS 1)"),
        ("out", t.message_sent, "outcome of each B/message/send"),
        ("out", t.command_result, "result of each command"),
        ("out", t.call_in, "each incoming call"),
        *(("out", t.output_state(n), "retained: ON/OFF") for n in outs),
        *(("out", t.input_state(n), "retained: ON/OFF") for n in ins),
        *(("out", t.input_event(n), "live ON/OFF, never retained") for n in ins),
        *(("out", t.buddy_state(w.id), "retained: watched contact") for w in config.presence.watch),
        ("in", t.message_send, 'JSON {"to", "body"}: send a MESSAGE'),
        ("in", t.command, f"a command line, as {mqtt.identity}"),
        *(("in", t.group_command(g), f"a command line for group {g}") for g in mqtt.groups),
        ("in", t.output_set_pattern, "ON / OFF / TOGGLE / {level} (trusted)"),
        ("in", t.presence_set, "status word or JSON (trusted)"),
        ("in", t.presence_status_set, "status only (trusted; Home Assistant's select)"),
        ("in", t.presence_note_set, "note only (trusted; Home Assistant's text)"),
    ]
    lines = [f"broker {brokers}, base topic {mqtt.base_topic}"]
    width = max(len(topic) for _, topic, _ in rows)
    lines += [f"{way:<4}{topic:<{width}}  {what}" for way, topic, what in rows]
    if not mqtt.discovery_prefix:
        lines.append('Home Assistant discovery: off (mqtt.discovery_prefix = "")')
        return lines
    prefix = mqtt.discovery_prefix
    lines.append(f"in  {ha_status_topic(prefix)}  Home Assistant's birth: announce again")
    lines.append(f"Home Assistant discovery under {prefix}/, device sipagent_{config.device.id}:")
    for entity in discovery.entities(config):
        name = entity.fields.get("name") or entity.fields.get("subtype", "")
        lines.append(f"  {entity.component:<18}{entity.key:<28}{name}")
    return lines
