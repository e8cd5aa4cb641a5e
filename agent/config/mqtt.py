"""Reading [mqtt]: the broker (or brokers: agent.config.brokers), its login and TLS, the topics,
the identity `B/command` acts as, and the bounds on what broker clients can send.
"""

from __future__ import annotations

import re

from agent.config.brokers import read_brokers
from agent.config.model import MqttConfig
from agent.config.table import NAME, Table, default_of, existing_file, is_host, read_secret
from agent.core.sipuri import InvalidSipUri, address_of_record, parse_sip_uri


def read_mqtt(t: Table, device_id: str, base_dir: str | None) -> MqttConfig | None:
    host = t.text("host")
    if host is not None and not is_host(host):
        if re.fullmatch(r".+:\d+", host):
            t.problem("host", f"{host!r} has a port; set it with mqtt.port")
        else:
            t.problem("host", f"{host!r} is not a host name or IP address")
    tls = t.flag("tls", False)
    port = t.integer("port", 8883 if tls else 1883, 1, 65535)
    brokers = read_brokers(t, host, port)
    mqtt = MqttConfig(
        host=brokers[0].host if brokers else "",
        port=port,
        username=t.text("username"),
        password=read_secret(t, "password", base_dir)[0],
        client_id=t.text("client_id", f"sipagent-{device_id}") or "",
        base_topic=_topic(t, "base_topic", f"sipagent/{device_id}"),
        qos=t.integer("qos", 1, 0, 2),
        keepalive=t.integer("keepalive", 30, 5, 3600),
        discovery_prefix=_topic(t, "discovery_prefix", "homeassistant", empty_ok=True),
        tls=tls,
        ca_file=existing_file(t, "ca_file", base_dir),
        identity=_identity(t, "identity", "mqtt:local"),
        reconnect_max_s=t.integer("reconnect_max", 30, 1, 3600),
        send_timeout_s=t.integer("send_timeout", 30, 1, 3600),
        send_retries=t.integer("send_retries", 2, 0, 10),
        notify_to=_notify_to(t),
        groups=_groups(t),
        group_prefix=_topic(t, "group_prefix", default_of(MqttConfig, "group_prefix")),
        brokers=brokers,
        failback_s=t.integer("failback", default_of(MqttConfig, "failback_s"), 0, 86400),
        max_payload=t.integer("max_payload", default_of(MqttConfig, "max_payload"), 256, 1048576),
        max_pending=t.integer("max_pending", default_of(MqttConfig, "max_pending"), 10, 100000),
    )
    t.finish()
    # [mqtt] without a host: MQTT is off
    return mqtt if host is not None or "hosts" in t.raw else None


def _groups(t: Table) -> tuple[str, ...]:
    """mqtt.groups: the fleets this agent belongs to, each a plain topic level."""
    names: list[str] = []
    for path, name in t.texts("groups"):
        if not NAME.fullmatch(name):
            t.problems.append(f"{path}: {name!r}: a group name must match [a-z0-9_-]+")
        elif name in names:
            t.problems.append(f"{path}: group {name!r} is listed twice")
        else:
            names.append(name)
    return tuple(names)


def _notify_to(t: Table) -> str | None:
    text = t.text("notify_to")
    if text is None:
        return None
    try:
        return str(parse_sip_uri(text))
    except InvalidSipUri as err:
        t.problem("notify_to", str(err))
        return None


def _topic(t: Table, key: str, default: str, *, empty_ok: bool = False) -> str:
    topic = t.text(key, default, empty_ok=empty_ok)
    if topic is None:
        return default
    if "+" in topic or "#" in topic:
        t.problem(key, f"{topic!r} must not contain '+' or '#'")
    elif topic.startswith("/") or topic.endswith("/"):
        t.problem(key, f"{topic!r} must not start or end with '/'")
    elif "//" in topic:
        t.problem(key, f"{topic!r} must not contain an empty level ('//')")
    return topic


def _identity(t: Table, key: str, default: str) -> str:
    identity = t.text(key, default) or default
    if not identity.lower().startswith(("sip:", "sips:")) and "<" not in identity:
        return identity
    try:
        return address_of_record(identity)
    except InvalidSipUri as err:
        t.problem(key, str(err))
        return identity
