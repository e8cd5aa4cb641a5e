"""Reading [access] and [calls]: who may do what, one-time code secrets, call handling.

Kept apart from `agent.config.load` because rights are a concept of their own; the same
rules apply: every problem is noted as `key: problem`.
"""

from __future__ import annotations

from agent.config.model import AccessConfig, CallConfig, GpioConfig, UserRights
from agent.config.table import MQTT_IDENTITY, NAME, Table, default_of, read_secret
from agent.core.sipuri import InvalidSipUri, address_of_record
from agent.core.totp import InvalidSecret, decode_secret


def read_access(t: Table, base_dir: str | None) -> AccessConfig:
    allow: list[str] = []
    for path, text in t.texts("allow"):
        try:
            # An MQTT identity (mqtt.identity, for B/command) is named as it is configured.
            aor = text.strip() if MQTT_IDENTITY.fullmatch(text.strip()) else address_of_record(text)
        except InvalidSipUri as err:
            t.problems.append(f"{path}: {err}")
            continue
        if aor not in allow:
            allow.append(aor)
    on_forbidden = t.choice("on_forbidden", ("reply", "silent"), "reply")
    users = _users(t, allow, base_dir)
    access = AccessConfig(
        allow=tuple(allow),
        on_forbidden=on_forbidden,
        users=users,
        require_code=tuple(name for _, name in t.texts("require_code")),
        rate_per_minute=t.integer("rate_per_minute", 30, 1, 6000),
        rate_burst=t.integer("rate_burst", 10, 1, 1000),
        max_message_bytes=t.integer("max_message_bytes", 1000, 16, 65536),
        code_failures=t.integer("code_failures", default_of(AccessConfig, "code_failures"), 1, 100),
        code_lockout_s=t.duration(
            "code_lockout", default_of(AccessConfig, "code_lockout_s"), 10.0, 86400.0
        ),
    )
    t.finish()
    return access


def _users(t: Table, allow: list[str], base_dir: str | None) -> tuple[UserRights, ...]:
    """access.users."<identity>": rights of one sender (keys are URIs, so quoted in TOML)."""
    from agent.core.commands import COMMANDS  # the language names the commands rights refer to

    outer = t.table("users")
    if outer is None:
        return ()
    users: list[UserRights] = []
    for key in outer.raw:
        if outer.table(key) is None:
            continue
        sub = Table(t.problems, f"{outer.path}.{json_key(key)}", outer.raw[key])
        try:
            identity = (
                key.strip() if MQTT_IDENTITY.fullmatch(key.strip()) else address_of_record(key)
            )
        except InvalidSipUri as err:
            outer.problem(json_key(key), str(err))
            sub.finish()
            continue
        if identity in allow:
            outer.problem(json_key(key), f"{identity} is also in access.allow (all rights)")
        if any(u.identity == identity for u in users):
            outer.problem(json_key(key), f"{identity} is given twice")
        commands = _names(sub, "commands")
        for name in commands or ():
            if name not in COMMANDS:
                sub.problem(
                    "commands", f"unknown command {name!r} (commands: {', '.join(COMMANDS)})"
                )
        outputs = _names(sub, "outputs")
        users.append(UserRights(identity, commands, outputs, _totp_secret(sub, base_dir)))
        sub.finish()
    return tuple(users)


def json_key(key: str) -> str:
    """A table key as TOML writes it when it needs quotes (URIs have dots and colons)."""
    return key if NAME.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'


def _names(t: Table, key: str) -> tuple[str, ...] | None:
    if key not in t.raw:
        t.value(key, "array of strings", (list,))  # marks the key as known
        return None
    return tuple(dict.fromkeys(text.strip().lower() for _, text in t.texts(key)))


def _totp_secret(t: Table, base_dir: str | None) -> bytes | None:
    """`totp_secret` (base32), or the contents of `totp_secret_file` (systemd credentials first)."""
    text, key = read_secret(t, "totp_secret", base_dir)
    if text is None:
        return None
    try:
        return decode_secret(text)
    except InvalidSecret as err:
        t.problem(key, str(err))
        return None


def check_output_names(
    problems: list[str], access: AccessConfig, gpio: GpioConfig, calls: CallConfig
) -> None:
    """Names in [access] and [calls] must be outputs of [gpio]."""
    names = [o.name for o in gpio.outputs]
    known = ", ".join(names) or "none configured"
    for i, name in enumerate(access.require_code):
        if name not in names:
            problems.append(f"access.require_code[{i}]: unknown output {name!r} (outputs: {known})")
    for user in access.users:
        for name in user.outputs or ():
            if name not in names:
                where = f"access.users.{json_key(user.identity)}.outputs"
                problems.append(f"{where}: unknown output {name!r} (outputs: {known})")
    if calls.action is not None:
        from agent.core.commands import CommandError, parse_request

        try:
            request = parse_request(calls.action)
        except CommandError as err:
            problems.append(f"calls.action: {err}")
            return
        target = request.command.target
        if target is not None and request.command.takes_output and target not in names:
            problems.append(f"calls.action: unknown output {target!r} (outputs: {known})")


def read_calls(t: Table) -> CallConfig:
    calls = CallConfig(
        reject_code=t.integer("reject_code", 603, 300, 699),
        action=t.text("action"),
    )
    t.finish()
    return calls
