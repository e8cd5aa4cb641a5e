"""Reading the presence keys: input rules ([gpio.inputs.<name>]) and the [presence] table.

Part of the loader (agent.config.load), apart because presence is a concept of its own: the
same `Table` getters, the same `key: problem` lines.
"""

from __future__ import annotations

from agent.config.model import (
    DEFAULT_PRESENCE,
    GpioConfig,
    InputConfig,
    InputRule,
    PresenceConfig,
    SipConfig,
    WatchConfig,
)
from agent.config.table import NAME, Table, default_of, type_name
from agent.core.presence import PresenceError, normalize_status, template_fields, validate_note
from agent.core.sipuri import InvalidSipUri, address_of_record, parse_sip_uri

_ACTIVE: str = default_of(InputConfig, "active_text")
_INACTIVE: str = default_of(InputConfig, "inactive_text")


def input_config(t: Table, name: str, pin: str, pull_up: bool, bounce_ms: int) -> InputConfig:
    """An input's presence rules and messages (see agent.core.presence_keeper)."""
    level = t.choice("active_state", ("low", "high"), "") or None
    message_to: list[str] = []
    for path, text in t.texts("message_to"):
        try:
            message_to.append(str(parse_sip_uri(text)))
        except InvalidSipUri as err:
            t.problems.append(f"{path}: {err}")
    rules = [_input_rule(t, key) for key in ("when_active", "when_inactive")]
    if any(r.message for r in rules) and not message_to:
        t.problem("message_to", "required when when_active/when_inactive send a message")
    return InputConfig(
        name,
        pin,
        pull_up,
        bounce_ms,
        active_high=None if level is None else level == "high",
        active_text=t.text("active_text", _ACTIVE) or _ACTIVE,
        inactive_text=t.text("inactive_text", _INACTIVE) or _INACTIVE,
        when_active=rules[0],
        when_inactive=rules[1],
        message_to=tuple(message_to),
        trigger=t.flag("trigger", False),
        label=t.text("label", "") or "",
    )


def _input_rule(parent: Table, key: str) -> InputRule:
    t = parent.table(key) or type(parent)(parent.problems, parent.where(key), {})
    status = t.text("status")
    if status is not None:
        try:
            status = normalize_status(status)
        except PresenceError as err:
            t.problem("status", str(err))
    rule = InputRule(status, t.text("note", empty_ok=True), t.text("message"))
    t.finish()
    return rule


def presence_config(t: Table, sip: SipConfig, gpio: GpioConfig) -> PresenceConfig:
    registrar_problem = any(p.startswith("sip.registrar:") for p in t.problems)
    if sip.presence == "publish" and sip.registrar is None and not registrar_problem:
        t.problems.append(
            "sip.presence: 'publish' needs sip.registrar (a presence server); "
            "use 'serve' to answer SUBSCRIBE without one"
        )
    status = t.text("status", DEFAULT_PRESENCE.status) or DEFAULT_PRESENCE.status
    try:
        status = normalize_status(status)
    except PresenceError as err:
        t.problem("status", str(err))
        status = DEFAULT_PRESENCE.status
    note = t.text("note", "", empty_ok=True) or ""
    watchers: list[str] | None = None  # None: the people in access.allow
    if "watchers" in t.raw:
        watchers = []
        for path, text in t.texts("watchers"):
            try:
                watchers.append(address_of_record(text))
            except InvalidSipUri as err:
                t.problems.append(f"{path}: {err}")
    watch: list[WatchConfig] = []
    outer = t.table("watch")
    for contact_id, value in (outer.raw if outer else {}).items():
        path = f"{t.where('watch')}.{contact_id}"
        if not NAME.fullmatch(contact_id):
            t.problems.append(f"{path}: name must match [a-z0-9_-]+")
        elif not isinstance(value, str):
            t.problems.append(f"{path}: SIP URI string expected, got {type_name(value)}")
        else:
            try:
                watch.append(WatchConfig(contact_id, str(parse_sip_uri(value))))
            except InvalidSipUri as err:
                t.problems.append(f"{path}: {err}")
    names = {i.name for i in gpio.inputs} | {o.name for o in gpio.outputs}
    _check_template(t, "note", note, names)
    _check_note(t, "note", note)
    for inp in gpio.inputs:
        inp_table = type(t)(t.problems, f"gpio.inputs.{inp.name}", {})
        _check_note(inp_table, "active_text", inp.active_text)
        _check_note(inp_table, "inactive_text", inp.inactive_text)
        for key, rule in (("when_active", inp.when_active), ("when_inactive", inp.when_inactive)):
            where = type(t)(t.problems, f"gpio.inputs.{inp.name}.{key}", {})
            _check_note(where, "note", rule.note)
            for field, template in (("note", rule.note), ("message", rule.message)):
                _check_template(where, field, template, names)
    t.finish()
    return PresenceConfig(status, note, None if watchers is None else tuple(watchers), tuple(watch))


def _check_note(t: Table, key: str, text: str | None) -> None:
    """Notes from the config (and the input words they name) follow the rule for every note."""
    if text is None:
        return
    try:
        validate_note(text)
    except PresenceError as err:
        t.problem(key, str(err))


def _check_template(t: Table, key: str, text: str | None, names: set[str]) -> None:
    """A note or message template may name inputs and outputs: `door {door}`."""
    if not text:
        return
    try:
        fields = template_fields(text)
    except ValueError as err:
        t.problem(key, f"{err} (write {{{{ and }}}} for literal braces)")
        return
    for field in fields:
        if field not in names:
            known = ", ".join(sorted(names)) or "none configured"
            t.problem(key, f"{{{field}}} is not an input or output (known: {known})")
