"""Reading a config file into the Config tree (agent.config.model), every check on the way:
here, or in a companion module for a table of its own (access, accounts, brokers, gpio, mqtt,
perimeter, presence).

Each table is read key by key through `agent.config.table.Table`, which notes a problem
instead of stopping, so one run reports everything wrong with a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agent import __version__
from agent.config.access import check_output_names, read_access, read_calls
from agent.config.accounts import DEFAULT_NAME, account_name, read_more_accounts
from agent.config.gpio import read_gpio
from agent.config.model import (
    DEFAULT_OUTBOX,
    Config,
    ConfigError,
    DeviceConfig,
    LogConfig,
    OutboxConfig,
    SipConfig,
    SipNatConfig,
    SipRecoveryConfig,
    SipTlsConfig,
    WatchdogConfig,
)
from agent.config.mqtt import read_mqtt
from agent.config.nameservers import read_nameservers
from agent.config.perimeter import read_accept, read_limits
from agent.config.presence import presence_config
from agent.config.table import (
    NAME,
    Table,
    existing_file,
    is_host,
    read_secret,
    resolve_path,
    split_host_port,
)

DEFAULT_CONFIG_PATH = "/etc/sipagent/agent.toml"

# A config that runs on any machine: no registrar, no broker, mock pins.
EMBEDDED_DEFAULT = """\
# sipagent's embedded default: direct mode on loopback, mock GPIO, no MQTT.

[device]
id = "sipagent"
name = "sipagent demo"

[sip]
uri = "sip:agent@127.0.0.1"
listen = "127.0.0.1:5060"
transport = "udp"
presence = "off"

[access]
allow = ["sip:owner@127.0.0.1"]

[gpio]
pin_factory = "mock"

[gpio.outputs.lamp]
pin = "GPIO17"

[gpio.outputs.gate]
pin = "GPIO18"
"""


def parse_config(text: str, *, source: str = "<string>", base_dir: str | None = None) -> Config:
    """Build a Config from TOML text; relative paths in it resolve against `base_dir`."""
    # Imported here, not by this module: the service reads its config once, and then forgets
    # the parser (agent.lean.forget), a third of a megabyte it would otherwise keep for good.
    import tomllib

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{source}: TOML syntax error: {err}"]) from None
    return build_config(raw, source=source, base_dir=base_dir)


def load_config(path: str) -> Config:
    """Read and validate the config file at `path`; raise ConfigError listing every problem."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as err:
        raise ConfigError([f"{path}: cannot read config file: {err.strerror or err}"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{path}: not UTF-8 text ({err.reason} at byte {err.start})"]) from None
    return parse_config(text, source=path, base_dir=os.path.dirname(os.path.abspath(path)))


def embedded_default() -> Config:
    """The built-in config used when there is no config file."""
    return parse_config(EMBEDDED_DEFAULT, source="<embedded default>")


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
    mqtt = read_mqtt(mqtt_table, device.id, base_dir) if mqtt_table else None
    gpio = read_gpio(root.table("gpio") or Table.detached("gpio"))
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
    ca_file = existing_file(t, "ca_file", base_dir)
    verify = t.flag("verify", defaults.verify)
    cert_file = existing_file(t, "cert_file", base_dir)
    key_file = existing_file(t, "key_file", base_dir)
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


def _outbox(t: Table, base_dir: str | None) -> OutboxConfig:
    path = t.text("path")
    outbox = OutboxConfig(
        path=resolve_path(path, base_dir) if path is not None else None,
        capacity=t.integer("capacity", DEFAULT_OUTBOX.capacity, 1, 10_000_000),
        when_full=t.choice("when_full", ("drop_oldest", "refuse"), DEFAULT_OUTBOX.when_full),
        synchronous=t.choice("synchronous", ("normal", "full"), DEFAULT_OUTBOX.synchronous),
        max_disk=t.size("max_disk", DEFAULT_OUTBOX.max_disk, 512 * 1024, 4 * 1024**3),
        max_memory=t.size("max_memory", DEFAULT_OUTBOX.max_memory, 0, 1024**3),
    )
    t.finish()
    return outbox


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
