"""Agent configs for the tests, built from the lab's servers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from .kamailio import Kamailio
from .mosquitto import Mosquitto

DEFAULT_OUTPUTS: Mapping[str, int] = {"lamp": 17, "gate": 18}

# A door contact on GPIO27 (pulled up: low = active = "open") that makes the device busy,
# and a presence note that says so: `extra=DOOR_CONFIG`.
DOOR_CONFIG = """
[gpio.inputs.door]
pin = "GPIO27"
bounce_ms = 0
active_text = "open"
inactive_text = "closed"

[gpio.inputs.door.when_active]
status = "busy"

[gpio.inputs.door.when_inactive]
status = "available"

[presence]
note = "door {door}"
"""

# A doorbell on GPIO22 (pulled up: pressing pulls it low) that Home Assistant sees as device
# triggers `"Doorbell" pressed` / `released`: `extra=BELL_CONFIG`.
BELL_CONFIG = """
[gpio.inputs.bell]
pin = "GPIO22"
bounce_ms = 0
trigger = true
label = "Doorbell"
"""


def agent_toml(
    kamailio: Kamailio | None = None,
    *,
    mosquitto: Mosquitto | None = None,
    user: str = "agent",
    password: str | None = None,
    transport: str = "udp",
    listen: str = "127.0.0.1:0",
    allow: Iterable[str] = ("owner",),
    device_id: str = "porch",
    outputs: Mapping[str, int] = DEFAULT_OUTPUTS,
    on_forbidden: str = "reply",
    log_level: str = "debug",
    presence: str = "off",
    inputs: Mapping[str, int] | None = None,
    mqtt_options: Mapping[str, object] | None = None,
    extra: str = "",
    access_extra: str = "",
    output_extra: Mapping[str, str] | None = None,
) -> str:
    """TOML for an agent registered at `kamailio` (direct mode on `listen` when None).

    `access_extra` and `output_extra[name]` are TOML lines added to [access] and to
    [gpio.outputs.<name>]; `extra` is appended at the end.
    """
    lines = ["[device]", f'id = "{device_id}"', "", "[sip]"]
    if kamailio is not None:
        lines += [
            f'uri = "{kamailio.aor(user)}"',
            f'registrar = "{kamailio.registrar_uri}"',
            f'password = "{password if password is not None else kamailio.users[user]}"',
        ]
        allowed = [a if ":" in a else kamailio.aor(a) for a in allow]
    else:
        lines += [f'uri = "sip:{user}@127.0.0.1"']
        allowed = [a if ":" in a else f"sip:{a}@127.0.0.1" for a in allow]
    lines += [f'transport = "{transport}"', f'listen = "{listen}"', f'presence = "{presence}"', ""]
    lines += ["[access]", "allow = [" + ", ".join(f'"{a}"' for a in allowed) + "]"]
    lines += [f'on_forbidden = "{on_forbidden}"', access_extra, ""]
    if mosquitto is not None:
        lines += ["[mqtt]", f'host = "{mosquitto.host}"', f"port = {mosquitto.port}"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in (mqtt_options or {}).items()]
        lines += [""]
    lines += ["[log]", f'level = "{log_level}"', "", "[gpio]", 'pin_factory = "mock"', ""]
    for name, pin in outputs.items():
        lines += [f"[gpio.outputs.{name}]", f'pin = "GPIO{pin}"']
        lines += [(output_extra or {}).get(name, ""), ""]
    for name, pin in (inputs or {}).items():
        lines += [f"[gpio.inputs.{name}]", f'pin = "GPIO{pin}"', ""]
    return "\n".join(lines) + "\n" + extra


def agent_config(
    server: Kamailio,
    *,
    registrar: str | None = None,
    transport: str = "udp",
    listen: str = "127.0.0.1:0",
    tls: dict[str, object] | None = None,
    nat: dict[str, object] | None = None,
    recovery: dict[str, object] | None = None,
    expires: int = 300,
    mqtt: Mosquitto | None = None,
) -> str:
    """An agent registered as sip:agent@<domain> at `server`, commands allowed from owner,
    with the network's own tables (sip.tls, sip.nat, sip.recovery) given as dicts; for the
    network tests (tests/system/test_network.py, test_outbound.py). Device id "net", one lamp."""

    def table(name: str, values: dict[str, object] | None) -> str:
        if not values:
            return ""
        return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())

    return (
        '[device]\nid = "net"\n\n[sip]\n'
        f'uri = "{server.aor("agent")}"\n'
        f'registrar = "{registrar or server.registrar_uri}"\n'
        f'password = "{server.users["agent"]}"\n'
        f'transport = "{transport}"\nlisten = "{listen}"\npresence = "off"\n'
        f"register_expires = {expires}\n"
        + table("sip.tls", tls)
        + table("sip.nat", nat)
        + table("sip.recovery", recovery)
        # A send asked for while offline waits send_timeout before it fails: keep it short.
        + (f'[mqtt]\nhost = "{mqtt.host}"\nport = {mqtt.port}\nsend_timeout = 3\n' if mqtt else "")
        + f'\n[access]\nallow = ["{server.aor("owner")}"]\n\n[log]\nlevel = "debug"\n\n'
        '[gpio]\npin_factory = "mock"\n\n[gpio.outputs.lamp]\npin = "GPIO17"\n'
    )
