"""Reading TOML into the Config tree: every default and every check lives here, or in a
config_* companion for a concept of its own (access, presence, brokers).

Each table is read key by key through `agent.config_table.Table`, which notes a problem
instead of stopping, so one run reports everything wrong with a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from agent import __version__
from agent.config import (
    DEFAULT_OUTBOX,
    Config,
    ConfigError,
    DeviceConfig,
    GpioConfig,
    InputConfig,
    LogConfig,
    MqttConfig,
    OutboxConfig,
    OutputConfig,
    SipConfig,
    SipNatConfig,
    SipRecoveryConfig,
    SipTlsConfig,
    WatchdogConfig,
)
from agent.config_access import check_output_names, read_access, read_calls
from agent.config_accounts import DEFAULT_NAME, account_name, read_more_accounts
from agent.config_brokers import read_brokers
from agent.config_perimeter import read_accept, read_limits
from agent.config_presence import input_config, presence_config
from agent.config_table import NAME, Table, read_secret, resolve_path
from agent.config_values import InvalidPin, is_host, parse_pin, split_host_port
from agent.nameservers import read_nameservers
from agent.sipuri import InvalidSipUri, address_of_record, parse_sip_uri


def build_config(raw: Mapping[str, Any], *, source: str, base_dir: str | None) -> Config:
    """Validate parsed TOML and build the Config; raise ConfigError listing every problem."""
    # [access] and [calls] are read in their own module, which uses this module's Table.

    problems: list[str] = []
    root = Table(problems, "", raw)
    device = _device(root.table("device", required=True) or Table.detached("device"))
    sip_table = root.table("sip", required=True) or Table.detached("sip")
    sip = _sip(sip_table, base_dir)
    more_accounts = read_more_accounts(sip_table, sip, lambda t: _sip(t, base_dir, nested=True))
    sip_table.finish()
    access = read_access(root.table("access") or Table.detached("access"), base_dir)
    mqtt_table = root.table("mqtt")
    mqtt = _mqtt(mqtt_table, device.id, base_dir) if mqtt_table else None
    gpio = _gpio(root.table("gpio") or Table.detached("gpio"))
    log = _log(root.table("log") or Table.detached("log"))
    calls = read_calls(root.table("calls") or Table.detached("calls"))
    # Not detached: presence_config also reports problems spanning tables (sip.presence).
    presence_table = root.table("presence") or Table(problems, "presence", {})
    presence = presence_config(presence_table, sip, gpio)
    watchdog = _watchdog(root.table("watchdog") or Table.detached("watchdog"))
    outbox = _outbox(root.table("outbox") or Table.detached("outbox"), base_dir)
    root.finish()
    check_output_names(problems, access, gpio, calls)
    if problems:
        raise ConfigError(problems)
    return Config(
        device, sip, access, mqtt, gpio, log, calls, watchdog, source, presence, outbox,
        more_accounts,
    )  # fmt: skip


def _device(t: Table) -> DeviceConfig:
    device_id = t.text("id", required=True)
    if device_id is not None and not NAME.fullmatch(device_id):
        t.problem("id", f"{device_id!r} must match [a-z0-9_-]+")
    device_id = device_id or "sipagent"
    name = t.text("name", device_id)
    t.finish()
    return DeviceConfig(id=device_id, name=name or device_id)


def _sip(t: Table, base_dir: str | None, *, nested: bool = False) -> SipConfig:
    """[sip], or one `[[sip.accounts]]` entry (`nested`: a name is required, and the caller
    finishes [sip] itself once it has read the entries)."""
    name = account_name(t, None if nested else DEFAULT_NAME)
    uri = t.sip_uri("uri", required=True)
    if uri is not None and uri.user is None:
        t.problem("uri", f"{str(uri)!r} has no user part (e.g. 'sip:porch@{uri.hostport}')")
    registrar = t.sip_uri("registrar")
    proxy = t.sip_uri("proxy")
    username = t.text("username", uri.user if uri and uri.user else "")
    password = read_secret(t, "password", base_dir)[0]
    secure = any(u is not None and u.scheme == "sips" for u in (uri, registrar, proxy))
    transport = t.choice("transport", ("udp", "tcp", "tls"), "tls" if secure else "udp")
    if secure and transport != "tls":
        t.problem("transport", f"{transport!r} cannot reach a sips: URI; use 'tls'")
    host, port = _listen(t, "0.0.0.0:5060")
    presence_default = "publish" if "registrar" in t.raw else "serve"
    presence = t.choice("presence", ("publish", "serve", "off"), presence_default)
    accept_from, trusted = read_accept(t, routed=registrar is not None or proxy is not None)
    sip = SipConfig(
        uri=str(uri) if uri else "",
        registrar=str(registrar) if registrar else None,
        proxy=str(proxy) if proxy else None,
        username=username or "",
        password=password,
        transport=transport,
        listen_host=host,
        listen_port=port,
        presence=presence,
        # Down to 10 s: short enough for tests and for registrars that ask for it.
        reg_expires=t.integer("register_expires", 300, 10, 86400),
        user_agent=t.text("user_agent", f"sipagent/{__version__}") or "",
        realm=t.text("realm", "*") or "",
        tls=_sip_tls(t.table("tls") or t.empty("tls"), transport, base_dir),
        nat=_sip_nat(t.table("nat") or t.empty("nat")),
        recovery=_sip_recovery(t.table("recovery") or t.empty("recovery")),
        accept_from=accept_from,
        trusted=trusted,
        limits=read_limits(t.table("limits") or t.empty("limits")),
        nameservers=read_nameservers(t),
        name=name,
    )
    if nested:
        t.finish()  # [sip] itself is finished after its [[sip.accounts]] were read
    return sip


# Where Debian (and Raspberry Pi OS), then Fedora-likes, keep the system's trusted CAs.
SYSTEM_CA_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def _sip_tls(t: Table, transport: str, base_dir: str | None) -> SipTlsConfig:
    defaults = SipTlsConfig()
    ca_file = _existing_file(t, "ca_file", base_dir)
    verify = t.flag("verify", defaults.verify)
    cert_file = _existing_file(t, "cert_file", base_dir)
    key_file = _existing_file(t, "key_file", base_dir)
    if (cert_file is None) != (key_file is None):
        missing = "key_file" if key_file is None else "cert_file"
        t.problem(missing, "a client certificate needs both cert_file and key_file")
    if transport == "tls" and verify and ca_file is None:
        ca_file = next((f for f in SYSTEM_CA_FILES if os.path.isfile(f)), None)
        if ca_file is None:
            t.problem(
                "ca_file",
                "no system CA store found (install ca-certificates or set ca_file)",
            )
    t.finish()
    return SipTlsConfig(ca_file, verify, cert_file, key_file)


def _sip_nat(t: Table) -> SipNatConfig:
    defaults = SipNatConfig()
    stun = t.text("stun")
    if stun is not None:
        host, sep, port = stun.rpartition(":")
        if not sep:
            host, port = stun, "3478"
        if not is_host(host) or not (port.isdigit() and 0 < int(port) < 65536):
            t.problem("stun", f"{stun!r} is not host or host:port (e.g. 'stun.example.org')")
            stun = None
    nat = SipNatConfig(
        rewrite=t.flag("rewrite", defaults.rewrite),
        keepalive_s=t.integer("keepalive_s", defaults.keepalive_s, 0, 3600),
        stun=stun,
        outbound=t.flag("outbound", defaults.outbound),
    )
    t.finish()
    return nat


def _sip_recovery(t: Table) -> SipRecoveryConfig:
    defaults = SipRecoveryConfig()
    retry_min = t.integer("retry_min_s", defaults.retry_min_s, 1, 3600)
    retry_max = t.integer("retry_max_s", defaults.retry_max_s, 1, 3600)
    if retry_max < retry_min:
        t.problem("retry_max_s", f"{retry_max} is less than retry_min_s ({retry_min})")
        retry_max = retry_min
    recovery = SipRecoveryConfig(
        check_s=t.integer("check_s", defaults.check_s, 0, 86400),
        retry_min_s=retry_min,
        retry_max_s=retry_max,
    )
    t.finish()
    return recovery


def _listen(t: Table, default: str) -> tuple[str, int]:
    text = t.text("listen", default) or default
    try:
        return split_host_port(text)
    except ValueError as err:
        t.problem("listen", str(err))
        return split_host_port(default)


def _mqtt(t: Table, device_id: str, base_dir: str | None) -> MqttConfig | None:
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
        ca_file=_existing_file(t, "ca_file", base_dir),
        identity=_identity(t, "identity", "mqtt:local"),
        reconnect_max_s=t.integer("reconnect_max", 30, 1, 3600),
        send_timeout_s=t.integer("send_timeout", 30, 1, 3600),
        send_retries=t.integer("send_retries", 2, 0, 10),
        notify_to=_notify_to(t),
        groups=_groups(t),
        group_prefix=_topic(t, "group_prefix", "sipagent/group"),
        brokers=brokers,
        failback_s=t.integer("failback", 300, 0, 86400),
        max_payload=t.integer("max_payload", 16384, 256, 1048576),
        max_pending=t.integer("max_pending", 5000, 10, 100000),
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


def _outbox(t: Table, base_dir: str | None) -> OutboxConfig:
    path = t.text("path")
    outbox = OutboxConfig(
        path=resolve_path(path, base_dir) if path is not None else None,
        capacity=t.integer("capacity", 10000, 1, 10_000_000),
        when_full=t.choice("when_full", ("drop_oldest", "refuse"), "drop_oldest"),
        synchronous=t.choice("synchronous", ("normal", "full"), "normal"),
        max_disk=t.size("max_disk", DEFAULT_OUTBOX.max_disk, 512 * 1024, 4 * 1024**3),
        max_memory=t.size("max_memory", DEFAULT_OUTBOX.max_memory, 0, 1024**3),
    )
    t.finish()
    return outbox


def _existing_file(t: Table, key: str, base_dir: str | None) -> str | None:
    path = t.text(key)
    if path is None:
        return None
    path = resolve_path(path, base_dir)
    if not os.path.isfile(path):
        t.problem(key, f"no such file {path!r}")
    return path


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


def _gpio(t: Table) -> GpioConfig:
    factories = ("auto", "lgpio", "rpigpio", "pigpio", "native", "mock")
    pin_factory = t.choice("pin_factory", factories, "auto")
    used: dict[str, str] = {}  # pin -> the key that claimed it first
    outputs: list[OutputConfig] = []
    for name, sub in t.tables("outputs"):
        pin = _claim_pin(sub, used)
        active_high = sub.flag("active_high", True)
        initial = sub.on_off("initial", False)
        safe = sub.on_off("safe", initial)
        pwm = sub.flag("pwm", False)
        frequency = sub.integer("frequency_hz", 100, 1, 100000)
        level_min = sub.integer("level_min", 0, 0, 100)
        level_max = sub.integer("level_max", 100, 1, 100)
        if level_min > level_max:
            sub.problem("level_min", f"{level_min} is above level_max ({level_max})")
        max_pulse = sub.duration("max_pulse", 60.0, 0.01, 3600.0)
        pulse = sub.duration("pulse", min(1.0, max_pulse), 0.01, max_pulse)
        button = sub.flag("button", "pulse" in sub.raw)
        label = sub.text("label", "") or ""
        sub.finish()
        outputs.append(
            OutputConfig(
                name,
                pin,
                active_high,
                initial,
                safe,
                pwm=pwm,
                frequency_hz=frequency,
                level_min=level_min,
                level_max=level_max,
                pulse_s=pulse,
                max_pulse_s=max_pulse,
                button=button,
                label=label,
            )
        )
    inputs: list[InputConfig] = []
    output_names = {o.name for o in outputs}
    for name, sub in t.tables("inputs"):
        if name in output_names:
            t.problems.append(f"{sub.path}: name {name!r} is also used by gpio.outputs.{name}")
        pin = _claim_pin(sub, used)
        pull_up = sub.flag("pull_up", True)
        bounce_ms = sub.integer("bounce_ms", 50, 0, 10000)
        inputs.append(input_config(sub, name, pin, pull_up, bounce_ms))
        sub.finish()
    t.finish()
    return GpioConfig(pin_factory, tuple(outputs), tuple(inputs))


def _claim_pin(t: Table, used: dict[str, str]) -> str:
    value = t.value("pin", "string or integer", (str, int), True)
    if value is None:
        return ""
    try:
        pin = parse_pin(value)
    except InvalidPin as err:
        t.problem("pin", str(err))
        return ""
    if pin in used:
        t.problem("pin", f"{pin} is also used by {used[pin]}")
    else:
        used[pin] = t.where("pin")
    return pin


def _log(t: Table) -> LogConfig:
    level = t.choice("level", ("debug", "info", "warning", "error"), "info")
    t.finish()
    return LogConfig(level=level)


def _watchdog(t: Table) -> WatchdogConfig:
    watchdog = WatchdogConfig(
        registration_grace_s=t.integer("registration_grace_s", 300, 10, 86400),
        outbox_stuck_s=t.integer("outbox_stuck_s", 600, 10, 86400),
    )
    t.finish()
    return watchdog
