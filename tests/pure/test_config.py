"""The config loader: the model it builds, the defaults it fills, every problem it reports."""

from __future__ import annotations

import copy
import datetime
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent import __version__
from agent.config.gpio import InvalidPin, parse_pin
from agent.config.load import EMBEDDED_DEFAULT, embedded_default, load_config, parse_config
from agent.config.model import (
    AccessConfig,
    Broker,
    CallConfig,
    Config,
    ConfigError,
    DeviceConfig,
    GpioConfig,
    InputConfig,
    InputRule,
    LogConfig,
    MqttConfig,
    OutboxConfig,
    OutputConfig,
    SipConfig,
    SipLimitsConfig,
    SipNatConfig,
    SipRecoveryConfig,
    SipTlsConfig,
    UserRights,
    WatchdogConfig,
)
from agent.config.table import split_host_port

RFC_KEY = b"12345678901234567890"  # base32: GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent.toml"
DELETE = object()

# A valid config with every table present, so one bad value yields exactly one problem.
VALID: dict[str, Any] = {
    "device": {"id": "porch", "name": "Porch"},
    "sip": {"uri": "sip:porch@pbx.example.org", "password": "pw"},
    "access": {"allow": ["sip:owner@pbx.example.org"]},
    "mqtt": {"host": "localhost"},
    "gpio": {
        "outputs": {"gate": {"pin": "GPIO17"}, "lamp": {"pin": "GPIO18"}},
        "inputs": {"door": {"pin": "GPIO27"}},
    },
    "log": {"level": "info"},
    "outbox": {"capacity": 100},
}


def to_toml(data: dict[str, Any], path: str = "") -> str:
    """Just enough of a TOML writer for these tests."""
    lines = [f"[{path}]"] if path else []
    lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(to_toml(value, f"{path}.{json.dumps(key)}" if path else json.dumps(key)))
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return json.dumps(value)


def edited(edits: dict[str, Any], base: dict[str, Any] = VALID) -> str:
    """TOML for `base` with dotted keys set (or removed with DELETE)."""
    data = copy.deepcopy(base)
    for dotted, value in edits.items():
        *tables, key = dotted.split(".")
        table = data
        for name in tables:
            table = table.setdefault(name, {})
        if value is DELETE:
            del table[key]
        else:
            table[key] = value
    return to_toml(data)


def problems_of(text: str, **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, **kwargs)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


FULL_TOML = """
[device]
id = "porch-2"
name = "Porch controller"

[sip]
uri = "SIP:Porch@PBX.example.org"
registrar = "sip:pbx.example.org:5070"
proxy = "<sip:proxy.example.org;lr>"
username = "porch-auth"
password = "s3cret"
transport = "TLS"
listen = "[::1]:0"
presence = "serve"
register_expires = 600
user_agent = "porch/1"
realm = "pbx"

[sip.tls]
ca_file = "ca.pem"
verify = true
cert_file = "client.crt"
key_file = "client.key"

[sip.nat]
rewrite = false
keepalive_s = 25
stun = "stun.example.org:3479"
outbound = false

[sip.recovery]
check_s = 120
retry_min_s = 5
retry_max_s = 300

[access]
allow = [
    "sip:owner@PBX.example.org:5060",
    "\\"Bob\\" <sip:bob@pbx.example.org>",
    "sip:owner@pbx.example.org",  # the same as the first
]
on_forbidden = "silent"
require_code = ["gate"]
rate_per_minute = 12
rate_burst = 4
max_message_bytes = 500

[access.users."<sip:Alice@PBX.example.org:5060>"]
commands = ["pulse", "STATUS"]
outputs = ["gate"]
totp_secret = "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"

[access.users."mqtt:home-assistant"]
totp_secret_file = "ha.totp"

[mqtt]
host = "broker.lan"
port = 8884
username = "agent"
password = "mq"
client_id = "porch-client"
base_topic = "home/porch"
qos = 2
keepalive = 60
discovery_prefix = ""
tls = true
ca_file = "ca.pem"
identity = "<sip:HA@pbx.example.org;transport=tcp>"
reconnect_max = 5
send_timeout = 10
send_retries = 0
notify_to = "<sip:Owner@pbx.example.org>"
groups = ["porch-lights", "all"]
group_prefix = "home/group"

[outbox]
path = "state/outbox.db"
capacity = 500
when_full = "refuse"
synchronous = "FULL"

[gpio]
pin_factory = "mock"

[gpio.outputs.gate]
pin = "BOARD11"
active_high = false
initial = "on"
safe = "off"

max_pulse = "10s"
pulse = "500ms"

[gpio.outputs.lamp]
pin = 18
initial = true
pwm = true
frequency_hz = 200
level_min = 10
level_max = 90
max_pulse = 5

[gpio.inputs.door]
pin = "BCM27"
pull_up = false
bounce_ms = 0

[log]
level = "DEBUG"

[calls]
reject_code = 486
action = "pulse gate 2s"

[watchdog]
registration_grace_s = 120
outbox_stuck_s = 900
"""


def test_a_full_config_builds_the_model(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.crt", "client.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "ha.totp").write_text("MFRGGZDFMZTWQ2LKNNWG23TPOA\n")
    (tmp_path / "agent.toml").write_text(FULL_TOML)
    config = load_config(str(tmp_path / "agent.toml"))
    assert config == Config(
        device=DeviceConfig(id="porch-2", name="Porch controller"),
        sip=SipConfig(
            uri="sip:Porch@pbx.example.org",
            registrar="sip:pbx.example.org:5070",
            proxy="sip:proxy.example.org;lr",
            username="porch-auth",
            password="s3cret",
            transport="tls",
            listen_host="::1",
            listen_port=0,
            presence="serve",
            reg_expires=600,
            user_agent="porch/1",
            realm="pbx",
            tls=SipTlsConfig(
                ca_file=str(tmp_path / "ca.pem"),
                verify=True,
                cert_file=str(tmp_path / "client.crt"),
                key_file=str(tmp_path / "client.key"),
            ),
            nat=SipNatConfig(
                rewrite=False, keepalive_s=25, stun="stun.example.org:3479", outbound=False
            ),
            recovery=SipRecoveryConfig(check_s=120, retry_min_s=5, retry_max_s=300),
        ),
        access=AccessConfig(
            allow=("sip:owner@pbx.example.org", "sip:bob@pbx.example.org"),
            on_forbidden="silent",
            users=(
                UserRights("sip:Alice@pbx.example.org", ("pulse", "status"), ("gate",), RFC_KEY),
                UserRights("mqtt:home-assistant", None, None, b"abcdefghijklmnop"),
            ),
            require_code=("gate",),
            rate_per_minute=12,
            rate_burst=4,
            max_message_bytes=500,
        ),
        mqtt=MqttConfig(
            host="broker.lan",
            port=8884,
            username="agent",
            password="mq",
            client_id="porch-client",
            base_topic="home/porch",
            qos=2,
            keepalive=60,
            discovery_prefix="",
            tls=True,
            ca_file=str(tmp_path / "ca.pem"),
            identity="sip:HA@pbx.example.org",
            reconnect_max_s=5,
            send_timeout_s=10,
            send_retries=0,
            notify_to="sip:Owner@pbx.example.org",
            groups=("porch-lights", "all"),
            group_prefix="home/group",
            brokers=(Broker("broker.lan", 8884),),
            failback_s=300,
        ),
        gpio=GpioConfig(
            pin_factory="mock",
            outputs=(
                # `pulse` is set: Home Assistant gets a button for it.
                OutputConfig(
                    "gate", "GPIO17", False, True, False, False, 100, 0, 100, 0.5, 10.0, True
                ),
                OutputConfig("lamp", "GPIO18", True, True, True, True, 200, 10, 90, 1.0, 5.0),
            ),
            inputs=(InputConfig("door", "GPIO27", pull_up=False, bounce_ms=0),),
        ),
        log=LogConfig(level="debug"),
        calls=CallConfig(reject_code=486, action="pulse gate 2s"),
        watchdog=WatchdogConfig(registration_grace_s=120, outbox_stuck_s=900),
        source=str(tmp_path / "agent.toml"),
        outbox=OutboxConfig(
            path=str(tmp_path / "state" / "outbox.db"),
            capacity=500,
            when_full="refuse",
            synchronous="full",
        ),
    )
    assert config.gpio.output("gate") == config.gpio.outputs[0]
    assert config.gpio.output("gat") is None
    assert config.gpio.input("door") == config.gpio.inputs[0]


def test_a_minimal_config_gets_every_default() -> None:
    config = parse_config(to_toml({"device": {"id": "porch"}, "sip": {"uri": "sip:porch@h"}}))
    assert config == Config(
        device=DeviceConfig(id="porch", name="porch"),
        sip=SipConfig(
            uri="sip:porch@h",
            registrar=None,
            proxy=None,
            username="porch",
            password=None,
            transport="udp",
            listen_host="0.0.0.0",
            listen_port=5060,
            presence="serve",
            reg_expires=300,
            user_agent=f"sipagent/{__version__}",
            realm="*",
            accept_from="anyone",  # direct mode: there is no proxy to take requests from
        ),
        access=AccessConfig(
            allow=(),
            on_forbidden="reply",
            users=(),
            require_code=(),
            rate_per_minute=30,
            rate_burst=10,
            max_message_bytes=1000,
        ),
        mqtt=None,
        gpio=GpioConfig(pin_factory="auto", outputs=(), inputs=()),
        log=LogConfig(level="info"),
        calls=CallConfig(reject_code=603, action=None),
        watchdog=WatchdogConfig(registration_grace_s=300, outbox_stuck_s=600),
        source="<string>",
        outbox=OutboxConfig(
            path=None, capacity=10000, when_full="drop_oldest", synchronous="normal"
        ),
    )


def test_derived_defaults() -> None:
    config = parse_config(
        edited(
            {
                "sip.registrar": "sip:pbx.example.org",
                "mqtt.tls": True,
                "gpio.outputs.gate.initial": "on",
            }
        )
    )
    assert config.sip.presence == "publish"
    assert config.mqtt == MqttConfig(
        host="localhost",
        port=8883,
        username=None,
        password=None,
        client_id="sipagent-porch",
        base_topic="sipagent/porch",
        qos=1,
        keepalive=30,
        discovery_prefix="homeassistant",
        tls=True,
        ca_file=None,
        identity="mqtt:local",
        reconnect_max_s=30,
        send_timeout_s=30,
        send_retries=2,
        notify_to=None,
        brokers=(Broker("localhost", 8883),),
    )
    assert config.gpio.output("gate") == OutputConfig(
        "gate", "GPIO17", True, True, True, False, 100, 0, 100, 1.0, 60.0
    )
    assert config.gpio.inputs == (InputConfig("door", "GPIO27", pull_up=True, bounce_ms=50),)


def test_an_mqtt_table_without_host_means_no_mqtt_but_is_still_checked() -> None:
    assert parse_config(edited({"mqtt.host": DELETE, "mqtt.qos": 0})).mqtt is None
    assert problems_of(edited({"mqtt.host": DELETE, "mqtt.qos": 3})) == (
        "mqtt.qos: 3 is out of range 0..2",
    )


def test_mqtt_hosts_lists_brokers_in_order_with_the_default_port() -> None:
    config = parse_config(
        edited(
            {
                "mqtt.host": DELETE,
                "mqtt.port": 1884,
                "mqtt.hosts": ["a.lan:1883", "b.lan", "10.0.0.3:8883", "[::1]:1885", "::2"],
                "mqtt.failback": 60,
            }
        )
    )
    assert config.mqtt is not None
    assert config.mqtt.brokers == (
        Broker("a.lan", 1883),
        Broker("b.lan", 1884),
        Broker("10.0.0.3", 8883),
        Broker("::1", 1885),
        Broker("::2", 1884),
    )
    assert (config.mqtt.host, config.mqtt.failback_s) == ("a.lan", 60)
    assert [str(b) for b in config.mqtt.brokers[3:]] == ["[::1]:1885", "[::2]:1884"]


def test_mqtt_host_alone_is_one_broker_and_failback_defaults_to_300() -> None:
    config = parse_config(edited({}))
    assert config.mqtt is not None
    assert config.mqtt.brokers == (Broker(config.mqtt.host, config.mqtt.port),)
    assert config.mqtt.failback_s == 300


BAD = "is not a broker: host or host:port, port 1..65535 ([v6]:port for IPv6)"


@pytest.mark.parametrize(
    ("edits", "problems"),
    [
        (
            {"mqtt.hosts": ["a.lan", "b.lan"]},
            ("mqtt.hosts: set either mqtt.host or mqtt.hosts, not both",),
        ),
        ({"mqtt.host": DELETE, "mqtt.hosts": []}, ("mqtt.hosts: must list at least one broker",)),
        (
            {"mqtt.host": DELETE, "mqtt.hosts": "a.lan,b.lan"},
            ("mqtt.hosts: array of strings expected, got string",),
        ),
        (
            {"mqtt.host": DELETE, "mqtt.hosts": ["a.lan", 1883, "mqtt://b", "c:0", "d:70000"]},
            (
                "mqtt.hosts[1]: string expected, got integer",
                f"mqtt.hosts[2]: 'mqtt://b' {BAD}",
                f"mqtt.hosts[3]: 'c:0' {BAD}",
                f"mqtt.hosts[4]: 'd:70000' {BAD}",
            ),
        ),
        (
            {"mqtt.host": DELETE, "mqtt.port": 1883, "mqtt.hosts": ["a.lan", "a.lan:1883"]},
            ("mqtt.hosts[1]: 'a.lan:1883' is listed twice",),
        ),
        ({"mqtt.failback": -1}, ("mqtt.failback: -1 is out of range 0..86400",)),
        ({"mqtt.failback": "5m"}, ("mqtt.failback: integer expected, got string",)),
    ],
)
def test_mqtt_hosts_problems(edits: dict[str, Any], problems: tuple[str, ...]) -> None:
    assert problems_of(edited(edits)) == problems


def test_the_embedded_default_is_valid() -> None:
    config = embedded_default()
    assert config.source == "<embedded default>"
    assert config.device == DeviceConfig("sipagent", "sipagent demo")
    assert (config.sip.uri, config.sip.registrar, config.sip.presence) == (
        "sip:agent@127.0.0.1",
        None,
        "off",
    )
    assert (config.sip.listen_host, config.sip.listen_port, config.sip.transport) == (
        "127.0.0.1",
        5060,
        "udp",
    )
    assert config.access.allow == ("sip:owner@127.0.0.1",)
    assert config.mqtt is None
    assert config.gpio.pin_factory == "mock"
    assert [(o.name, o.pin) for o in config.gpio.outputs] == [
        ("lamp", "GPIO17"),
        ("gate", "GPIO18"),
    ]
    assert "[mqtt]" not in EMBEDDED_DEFAULT


def test_the_example_config_loads_without_problems() -> None:
    config = load_config(str(EXAMPLE))
    assert config.sip.registrar is not None
    assert config.mqtt is not None and config.mqtt.host == "localhost"
    assert [o.name for o in config.gpio.outputs] == ["gate", "lamp", "fan"]
    assert config.access.rights_of("sip:alice@pbx.example.org") is not None
    assert [i.name for i in config.gpio.inputs] == ["door"]


PIN_HINT = "(use GPIO0..GPIO27, BOARD<n> or a number)"
HOST_PORT_HINT = "is not host:port (e.g. '0.0.0.0:5060' or '[::1]:5060')"
NO_FILE = "No such file or directory"
FACTORIES = "auto, lgpio, rpigpio, pigpio, native, mock"

# (key, bad value, problem): the whole report is exactly the line "<key>: <problem>".
BAD = [
    ("device", DELETE, "required table is missing"),
    ("device", "porch", "table expected, got string"),
    ("device.id", DELETE, "required key is missing"),
    ("device.id", "Porch 1", "'Porch 1' must match [a-z0-9_-]+"),
    ("device.id", 7, "string expected, got integer"),
    ("device.name", "", "must not be empty"),
    ("sip", DELETE, "required table is missing"),
    ("sip.uri", DELETE, "required key is missing"),
    ("sip.uri", "porch@pbx", "not a SIP URI: 'porch@pbx'"),
    ("sip.uri", "sip:pbx", "'sip:pbx' has no user part (e.g. 'sip:porch@pbx')"),
    ("sip.registrar", "pbx.example.org", "not a SIP URI: 'pbx.example.org'"),
    ("sip.proxy", "sip:pbx:99999;lr", "not a SIP URI: 'sip:pbx:99999;lr' (bad port '99999')"),
    ("sip.username", "", "must not be empty"),
    ("sip.password", 1234, "string expected, got integer"),
    ("sip.transport", "sctp", "'sctp' is not one of: udp, tcp, tls"),
    ("sip.listen", "0.0.0.0", f"'0.0.0.0' {HOST_PORT_HINT}"),
    ("sip.listen", "::1:5060", f"'::1:5060' {HOST_PORT_HINT}"),
    ("sip.listen", "[::1]5060", f"'[::1]5060' {HOST_PORT_HINT}"),
    ("sip.listen", "0.0.0.0:70000", "port 70000 is out of range 0..65535"),
    ("sip.listen", 5060, "string expected, got integer"),
    ("sip.presence", "publsh", "'publsh' is not one of: publish, serve, off"),
    ("sip.register_expires", 9, "9 is out of range 10..86400"),
    ("sip.register_expires", "300", "integer expected, got string"),
    ("sip.user_agent", ["x"], "string expected, got array"),
    ("sip.realm", "", "must not be empty"),
    ("sip.tls", "yes", "table expected, got string"),
    ("sip.tls.ca_file", "/nonexistent/ca.pem", "no such file '/nonexistent/ca.pem'"),
    ("sip.tls.verify", "no", "boolean expected, got string"),
    ("sip.nat.rewrite", 1, "boolean expected, got integer"),
    ("sip.nat.keepalive_s", 3601, "3601 is out of range 0..3600"),
    ("sip.nat.stun", "stun://x", "'stun://x' is not host or host:port (e.g. 'stun.example.org')"),
    (
        "sip.nat.stun",
        "stun.example.org:0",
        "'stun.example.org:0' is not host or host:port (e.g. 'stun.example.org')",
    ),
    ("sip.nat.outbound", "true", "boolean expected, got string"),
    ("sip.recovery.check_s", -1, "-1 is out of range 0..86400"),
    ("sip.recovery.retry_min_s", 0, "0 is out of range 1..3600"),
    ("sip.recovery.retry_max_s", 1.5, "integer expected, got float"),
    ("access", [], "table expected, got array"),
    ("access.allow", "sip:owner@pbx", "array of strings expected, got string"),
    ("access.on_forbidden", "drop", "'drop' is not one of: reply, silent"),
    ("access.rate_per_minute", 0, "0 is out of range 1..6000"),
    ("access.rate_burst", 1001, "1001 is out of range 1..1000"),
    ("access.max_message_bytes", 15, "15 is out of range 16..65536"),
    ("access.users", ["sip:a@b"], "table expected, got array"),
    ("access.users.bob", {}, "not a SIP URI: 'bob'"),
    ("access.users.carol", {}, "not a SIP URI: 'carol'"),
    ("mqtt.host", "localhost:1883", "'localhost:1883' has a port; set it with mqtt.port"),
    ("mqtt.host", "mqtt://localhost", "'mqtt://localhost' is not a host name or IP address"),
    ("mqtt.port", 0, "0 is out of range 1..65535"),
    ("mqtt.username", False, "string expected, got boolean"),
    ("mqtt.password", 1.5, "string expected, got float"),
    ("mqtt.password_file", "/nonexistent/mq", f"cannot read '/nonexistent/mq': {NO_FILE}"),
    ("mqtt.client_id", "", "must not be empty"),
    ("mqtt.base_topic", "home/+/porch", "'home/+/porch' must not contain '+' or '#'"),
    ("mqtt.base_topic", "home/porch/", "'home/porch/' must not start or end with '/'"),
    ("mqtt.base_topic", "home//porch", "'home//porch' must not contain an empty level ('//')"),
    ("mqtt.base_topic", "", "must not be empty"),
    ("mqtt.qos", 3, "3 is out of range 0..2"),
    ("mqtt.keepalive", 4, "4 is out of range 5..3600"),
    ("mqtt.discovery_prefix", "#", "'#' must not contain '+' or '#'"),
    ("mqtt.tls", "yes", "boolean expected, got string"),
    ("mqtt.ca_file", "/nonexistent/ca.pem", "no such file '/nonexistent/ca.pem'"),
    ("mqtt.identity", "sip:ha@", "not a SIP URI: 'sip:ha@' (empty host)"),
    ("mqtt.identity", "", "must not be empty"),
    ("mqtt.reconnect_max", 0, "0 is out of range 1..3600"),
    ("mqtt.send_timeout", "30s", "integer expected, got string"),
    ("mqtt.send_retries", 11, "11 is out of range 0..10"),
    ("mqtt.notify_to", "owner@pbx", "not a SIP URI: 'owner@pbx'"),
    ("mqtt.groups", "fleet", "array of strings expected, got string"),
    ("mqtt.group_prefix", "sipagent/+", "'sipagent/+' must not contain '+' or '#'"),
    ("mqtt.group_prefix", "", "must not be empty"),
    ("outbox", "outbox.db", "table expected, got string"),
    ("outbox.path", "", "must not be empty"),
    ("outbox.capacity", 0, "0 is out of range 1..10000000"),
    ("outbox.when_full", "block", "'block' is not one of: drop_oldest, refuse"),
    ("outbox.synchronous", "off", "'off' is not one of: normal, full"),
    ("outbox.max_disk", "16 parsecs", "'16 parsecs' is not a size (e.g. 512K, 16M, 1G, or bytes)"),
    ("outbox.max_disk", "100K", "100K is out of range 512K..4G"),
    ("outbox.max_memory", "2G", "2G is out of range 0B..1G"),
    ("outbox.max_memory", 1.5, 'size (e.g. "16M") or integer expected, got float'),
    ("access.code_failures", 0, "0 is out of range 1..100"),
    ("access.code_lockout", "5s", "'5s' is out of range 10s..86400s"),
    ("access.code_lockout", "soon", "'soon' is not a duration (e.g. 500ms, 2s, 1.5s, 1m)"),
    ("gpio.pin_factory", "wiringpi", f"'wiringpi' is not one of: {FACTORIES}"),
    ("gpio.outputs", ["gate"], "table expected, got array"),
    ("gpio.outputs.gate", "GPIO17", "table expected, got string"),
    ("gpio.outputs.Gate", {"pin": 5}, "name must match [a-z0-9_-]+"),
    ("gpio.outputs.gate.pin", DELETE, "required key is missing"),
    ("gpio.outputs.gate.pin", "GPIO99", f"unknown pin 'GPIO99' {PIN_HINT}"),
    ("gpio.outputs.gate.pin", "BOARD2", "'BOARD2' is a power or ground pin, not a GPIO"),
    ("gpio.outputs.gate.pin", True, "string or integer expected, got boolean"),
    ("gpio.outputs.gate.active_high", "true", "boolean expected, got string"),
    ("gpio.outputs.gate.initial", "high", "'high' is not one of: on, off"),
    ("gpio.outputs.gate.initial", 1, "'on', 'off' or a boolean expected, got integer"),
    ("gpio.outputs.gate.safe", "closed", "'closed' is not one of: on, off"),
    ("gpio.outputs.gate.pwm", "yes", "boolean expected, got string"),
    ("gpio.outputs.gate.frequency_hz", 0, "0 is out of range 1..100000"),
    ("gpio.outputs.gate.level_min", 101, "101 is out of range 0..100"),
    ("gpio.outputs.gate.level_max", 0, "0 is out of range 1..100"),
    ("gpio.outputs.gate.max_pulse", "2h", "'2h' is not a duration (e.g. 500ms, 2s, 1.5s, 1m)"),
    ("gpio.outputs.gate.max_pulse", 0, "0 is out of range 0.01s..3600s"),
    ("gpio.outputs.gate.pulse", "90s", "'90s' is out of range 0.01s..60s"),
    ("gpio.outputs.gate.pulse", True, "duration (e.g. '2s') or seconds expected, got boolean"),
    ("gpio.inputs.door.pin", 28, f"unknown pin 28 {PIN_HINT}"),
    ("gpio.inputs.door.pull_up", 1, "boolean expected, got integer"),
    ("gpio.inputs.door.bounce_ms", 10001, "10001 is out of range 0..10000"),
    ("gpio.inputs.door.bounce_ms", 5.0, "integer expected, got float"),
    ("log.level", "trace", "'trace' is not one of: debug, info, warning, error"),
    ("log.level", datetime.date(2024, 1, 1), "string expected, got date/time"),
    ("calls.reject_code", 200, "200 is out of range 300..699"),
    ("sip.accept_from", "everyone", "'everyone' is not one of: proxy, anyone"),
    ("sip.limits.watchers", 0, "0 is out of range 1..10000"),
    ("sip.limits.watchers_per_sender", 0, "0 is out of range 1..10000"),
    ("sip.limits.subscribe_per_s", 0, "0 is out of range 1..10000"),
    ("sip.limits.stranger_answers_per_s", -1, "-1 is out of range 0..10000"),
    ("sip.limits.presence_per_s", 0, "0 is out of range 1..1000"),
    ("sip.limits.tcp_connections_per_ip", 60, "60 is out of range 1..32"),
    ("sip.limits.tcp_idle_s", 0, "0 is out of range 1..3600"),
    (
        "calls.action",
        "open gate",
        "unknown command 'open' (commands: help, status, on, off, "
        "toggle, pulse, blink, set, presence)",
    ),
    ("calls.action", "pulse gat", "unknown output 'gat' (outputs: gate, lamp)"),
    ("watchdog", 30, "table expected, got integer"),
    ("watchdog.registration_grace_s", 5, "5 is out of range 10..86400"),
    ("watchdog.registration_grace_s", "5m", "integer expected, got string"),
    ("watchdog.outbox_stuck_s", 86401, "86401 is out of range 10..86400"),
]


@pytest.mark.parametrize(("key", "value", "problem"), BAD, ids=[row[0] for row in BAD])
def test_each_bad_value_is_reported_as_one_line(key: str, value: Any, problem: str) -> None:
    assert problems_of(edited({key: value})) == (f"{key}: {problem}",)


# Bad values that take more than one key to set up: (edits, the one expected line).
BAD_COMBINATIONS = [
    (
        {"sip.registrar": "sip:pbx.example.org", "sip.trusted": ["192.0.2.0/24", "not a host!"]},
        "sip.trusted[1]: 'not a host!' is not an address, a network or a host name",
    ),
    (
        {"sip.trusted": ["192.0.2.7"]},
        "sip.trusted: only routed mode (sip.registrar or sip.proxy) has a proxy to trust",
    ),
    (
        {"sip.accept_from": "proxy"},
        "sip.accept_from: 'proxy' needs sip.registrar or sip.proxy (direct mode)",
    ),
    (
        {"mqtt.groups": ["porch", "Porch Lights"]},
        "mqtt.groups[1]: 'Porch Lights': a group name must match [a-z0-9_-]+",
    ),
    ({"mqtt.groups": ["a/b"]}, "mqtt.groups[0]: 'a/b': a group name must match [a-z0-9_-]+"),
    ({"mqtt.groups": ["all", "all"]}, "mqtt.groups[1]: group 'all' is listed twice"),
    ({"mqtt.groups": ["all", 3]}, "mqtt.groups[1]: string expected, got integer"),
    (
        {"sip.password_file": "/nonexistent/pw"},
        "sip.password: set either password or password_file, not both",
    ),
    (
        {"sip.password": DELETE, "sip.password_file": "/nonexistent/pw"},
        f"sip.password_file: cannot read '/nonexistent/pw': {NO_FILE}",
    ),
    (
        {"mqtt.password": "a", "mqtt.password_file": "b"},
        "mqtt.password: set either password or password_file, not both",
    ),
    ({"access.allow": ["sip:a@b", 3]}, "access.allow[1]: string expected, got integer"),
    (
        {"sip.tls.cert_file": "/nonexistent/c.pem", "sip.tls.key_file": __file__},
        "sip.tls.cert_file: no such file '/nonexistent/c.pem'",
    ),
    (
        {"sip.tls.cert_file": __file__, "sip.tls.key_file": "/nonexistent/k.pem"},
        "sip.tls.key_file: no such file '/nonexistent/k.pem'",
    ),
    (
        {"sip.recovery.retry_min_s": 30, "sip.recovery.retry_max_s": 10},
        "sip.recovery.retry_max_s: 10 is less than retry_min_s (30)",
    ),
    (
        {"sip.registrar": "sips:pbx.example.org", "sip.transport": "udp"},
        "sip.transport: 'udp' cannot reach a sips: URI; use 'tls'",
    ),
    ({"access.allow": ["sip:a@b", "owner"]}, "access.allow[1]: not a SIP URI: 'owner'"),
    (
        {"access.require_code": ["gate", "gat"]},
        "access.require_code[1]: unknown output 'gat' (outputs: gate, lamp)",
    ),
    (
        {"gpio.outputs.gate.level_min": 50, "gpio.outputs.gate.level_max": 40},
        "gpio.outputs.gate.level_min: 50 is above level_max (40)",
    ),
    (
        {"access.users": {"sip:a@b": {"commands": ["on", "fly"]}}},
        "access.users.\"sip:a@b\".commands: unknown command 'fly' (commands: help, status, on, "
        "off, toggle, pulse, blink, set, presence)",
    ),
    (
        {"access.users": {"sip:a@b": {"outputs": ["gate", "door"]}}},
        "access.users.\"sip:a@b\".outputs: unknown output 'door' (outputs: gate, lamp)",
    ),
    (
        {"access.users": {"sip:owner@pbx.example.org": {}}},
        'access.users."sip:owner@pbx.example.org": sip:owner@pbx.example.org is also in '
        "access.allow (all rights)",
    ),
    (
        {"access.users": {"sip:a@b": {}, "<sip:a@B:5060>": {}}},
        'access.users."<sip:a@B:5060>": sip:a@b is given twice',
    ),
    (
        {"access.users": {"sip:a@b": {"totp_secret": "not base32!"}}},
        'access.users."sip:a@b".totp_secret: TOTP secret is not base32 (letters A-Z and digits '
        "2-7)",
    ),
    (
        {"access.users": {"sip:a@b": {"totp_secret": "A" * 16, "totp_secret_file": "x"}}},
        'access.users."sip:a@b".totp_secret: set either totp_secret or totp_secret_file, not both',
    ),
    (
        {"access.users": {"sip:a@b": {"totp_secret_file": "/nonexistent/t"}}},
        f"access.users.\"sip:a@b\".totp_secret_file: cannot read '/nonexistent/t': {NO_FILE}",
    ),
    (
        {"access.users": {"sip:a@b": {"comands": []}}},
        "access.users.\"sip:a@b\".comands: unknown key (did you mean 'commands'?)",
    ),
]


@pytest.mark.parametrize(("edits", "line"), BAD_COMBINATIONS)
def test_bad_combinations_are_reported_as_one_line(edits: dict[str, Any], line: str) -> None:
    assert problems_of(edited(edits)) == (line,)


def _leaf_keys(data: dict[str, Any], path: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        full = f"{path}.{key}" if path else key
        keys |= _leaf_keys(value, full) if isinstance(value, dict) else {full}
    return keys


def _schema_key(path: str) -> str:
    """gpio.outputs.gate.pin -> gpio.outputs.*.pin; access.allow[1] -> access.allow"""
    if path.startswith("access.users.") and path.count(".") > 2:
        return "access.users.*." + path.rsplit(".", 1)[1]
    parts = path.split("[")[0].split(".")
    if parts[0] == "gpio" and len(parts) > 3:
        parts[2] = "*"
    return ".".join(parts)


def test_every_key_has_a_bad_value_case() -> None:
    known = _leaf_keys(tomllib.loads(FULL_TOML)) | {"sip.password_file", "mqtt.password_file"}
    lines = [f"{key}: {problem}" for key, _, problem in BAD] + [
        line for _, line in BAD_COMBINATIONS
    ]
    covered = {_schema_key(line.split(": ")[0]) for line in lines}
    assert {_schema_key(key) for key in known} - covered == set()


def test_all_problems_in_a_file_are_reported_in_order() -> None:
    text = edited(
        {
            "device.id": "Porch",
            "sip.registrar": "pbx.example.org",
            "sip.transport": "ftp",
            "mqtt.qos": 5,
            "gpio.outputs.gate.pin": "GPIO99",
            "log.level": 3,
        }
    )
    assert problems_of(text) == (
        "device.id: 'Porch' must match [a-z0-9_-]+",
        "sip.registrar: not a SIP URI: 'pbx.example.org'",
        "sip.transport: 'ftp' is not one of: udp, tcp, tls",
        "mqtt.qos: 5 is out of range 0..2",
        "gpio.outputs.gate.pin: unknown pin 'GPIO99' (use GPIO0..GPIO27, BOARD<n> or a number)",
        "log.level: string expected, got integer",
    )


def test_an_empty_file_names_the_required_tables() -> None:
    assert problems_of("") == (
        "device: required table is missing",
        "sip: required table is missing",
    )


UNKNOWN = [
    ({"sip.regstrar": "sip:pbx"}, "sip.regstrar: unknown key (did you mean 'registrar'?)"),
    ({"sip.colour": "blue"}, "sip.colour: unknown key"),
    ({"device.nmae": "x"}, "device.nmae: unknown key (did you mean 'name'?)"),
    ({"mqtt.qso": 1}, "mqtt.qso: unknown key (did you mean 'qos'?)"),
    ({"gpio.outputs.gate.pn": 4}, "gpio.outputs.gate.pn: unknown key (did you mean 'pin'?)"),
    (
        {"gpio.inputs.door.pullup": True},
        "gpio.inputs.door.pullup: unknown key (did you mean 'pull_up'?)",
    ),
    ({"gpio.output": {}}, "gpio.output: unknown key (did you mean 'outputs'?)"),
    ({"sipp": {"uri": "x"}}, "sipp: unknown table (did you mean 'sip'?)"),
    ({"verbose": True}, "verbose: unknown key"),
]


@pytest.mark.parametrize(("edits", "line"), UNKNOWN)
def test_unknown_keys_are_reported_with_a_suggestion(edits: dict[str, Any], line: str) -> None:
    assert problems_of(edited(edits)) == (line,)


def test_a_pin_used_twice_names_both_keys() -> None:
    text = edited({"gpio.outputs.lamp.pin": 17, "gpio.inputs.door.pin": "BOARD11"})
    assert problems_of(text) == (
        "gpio.outputs.lamp.pin: GPIO17 is also used by gpio.outputs.gate.pin",
        "gpio.inputs.door.pin: GPIO17 is also used by gpio.outputs.gate.pin",
    )


def test_an_input_named_like_an_output_is_a_problem() -> None:
    text = edited({"gpio.inputs.gate": {"pin": "GPIO22"}})
    assert problems_of(text) == ("gpio.inputs.gate: name 'gate' is also used by gpio.outputs.gate",)


PINS = [
    ("GPIO17", "GPIO17"), ("gpio17", "GPIO17"), ("BCM17", "GPIO17"), (17, "GPIO17"),
    ("17", "GPIO17"), (0, "GPIO0"), ("GPIO27", "GPIO27"), ("BOARD11", "GPIO17"),
    ("J8:11", "GPIO17"), ("board3", "GPIO2"), ("BOARD27", "GPIO0"), ("BOARD40", "GPIO21"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "pin"), PINS)
def test_pins_are_normalized_to_bcm_names(value: str | int, pin: str) -> None:
    assert parse_pin(value) == pin


@pytest.mark.parametrize(
    "value", ["GPIO28", 28, -1, "GPIO", "GPIO 17", "P1-11", "BOARD0", "BOARD41", "BOARD1", "J8:39"]
)
def test_bad_pins_are_rejected(value: str | int) -> None:
    with pytest.raises(InvalidPin, match=r"unknown pin|power or ground"):
        parse_pin(value)


def test_every_header_gpio_maps_to_a_distinct_bcm_pin() -> None:
    gpios = []
    for physical in range(1, 41):
        try:
            gpios.append(parse_pin(f"BOARD{physical}"))
        except InvalidPin:
            continue
    assert sorted(gpios) == sorted(f"GPIO{n}" for n in range(28))


@pytest.mark.parametrize(
    ("text", "host_port"),
    [
        ("0.0.0.0:5060", ("0.0.0.0", 5060)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:5062", ("::1", 5062)),
        ("[::]:5060", ("::", 5060)),
        ("pi.local:5060", ("pi.local", 5060)),
    ],
)
def test_listen_addresses(text: str, host_port: tuple[str, int]) -> None:
    assert split_host_port(text) == host_port


def test_password_file_is_read_next_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sip-password").write_text("s3cret\n")
    (tmp_path / "agent.toml").write_text(
        edited({"sip.password": DELETE, "sip.password_file": "sip-password"})
    )
    assert load_config(str(tmp_path / "agent.toml")).sip.password == "s3cret"


def test_password_file_strips_only_one_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret \n\n")
    text = edited({"mqtt.password_file": str(tmp_path / "pw")})
    config = parse_config(text)
    assert config.mqtt is not None and config.mqtt.password == "s3cret \n"


def test_relative_password_file_comes_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "sip-password").write_text("from-systemd")
    (tmp_path / "sip-password").write_text("next-to-config")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    text = edited({"sip.password": DELETE, "sip.password_file": "sip-password"})
    assert parse_config(text, base_dir=str(tmp_path)).sip.password == "from-systemd"


def test_a_missing_password_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    text = edited({"sip.password": DELETE, "sip.password_file": "nope"})
    assert problems_of(text, base_dir=str(tmp_path)) == (
        f"sip.password_file: cannot read '{tmp_path / 'nope'}': No such file or directory",
    )


def test_an_empty_password_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    text = edited({"sip.password": DELETE, "sip.password_file": str(tmp_path / "pw")})
    assert problems_of(text) == (f"sip.password_file: '{tmp_path / 'pw'}' is empty",)


def test_a_toml_syntax_error_is_one_line_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[device]\nid = "porch"\nname = porch\n')
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    (line,) = caught.value.problems
    assert line.startswith(f"{path}: TOML syntax error: ")
    assert line.endswith("(at line 3, column 8)")


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert caught.value.problems == (f"{path}: cannot read config file: No such file or directory",)


def test_a_config_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'[device]\nid = "\xff"\n')
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8 text"):
        load_config(str(path))


def test_enum_values_are_case_insensitive() -> None:
    config = parse_config(edited({"sip.transport": "TCP", "sip.presence": "Off"}))
    assert (config.sip.transport, config.sip.presence) == ("tcp", "off")


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    text = edited({"sip.tls.cert_file": str(tmp_path / "c.pem")})
    assert problems_of(text) == (
        "sip.tls.key_file: a client certificate needs both cert_file and key_file",
    )


def test_tls_verifies_against_the_system_store_by_default() -> None:
    config = parse_config(edited({"sip.transport": "tls"}))
    assert config.sip.tls.verify is True
    assert config.sip.tls.ca_file == "/etc/ssl/certs/ca-certificates.crt"


def test_routed_mode_takes_requests_only_from_the_proxy_unless_told_otherwise() -> None:
    routed = {"sip.registrar": "sip:pbx.example.org"}
    config = parse_config(edited(routed))
    assert (config.sip.accept_from, config.sip.trusted) == ("proxy", ())
    assert config.sip.limits == SipLimitsConfig()
    config = parse_config(
        edited(
            {
                **routed,
                "sip.accept_from": "anyone",
                "sip.trusted": ["192.0.2.0/24", "pbx2.example.org", "2001:db8::5"],
                "sip.limits.watchers": 10,
                "sip.limits.stranger_answers_per_s": 0,
            }
        )
    )
    assert config.sip.accept_from == "anyone"
    assert config.sip.trusted == ("192.0.2.0/24", "pbx2.example.org", "2001:db8::5")
    assert (config.sip.limits.watchers, config.sip.limits.stranger_answers_per_s) == (10, 0)


def test_a_sips_registrar_means_tls() -> None:
    config = parse_config(edited({"sip.registrar": "sips:pbx.example.org"}))
    assert config.sip.transport == "tls"


def test_nat_and_recovery_defaults_suit_a_home_router() -> None:
    sip = parse_config(edited({})).sip
    assert sip.nat == SipNatConfig(rewrite=True, keepalive_s=15, stun=None, outbound=True)
    assert sip.recovery == SipRecoveryConfig(check_s=60, retry_min_s=2, retry_max_s=60)


def test_access_allow_takes_an_mqtt_identity() -> None:
    config = parse_config(
        '[device]\nid = "porch"\n[sip]\nuri = "sip:porch@pbx.example.org"\n'
        '[access]\nallow = ["mqtt:home-assistant", "sip:owner@pbx.example.org"]\n'
        '[mqtt]\nhost = "localhost"\nidentity = "mqtt:home-assistant"\n'
    )
    assert config.access.allow == ("mqtt:home-assistant", "sip:owner@pbx.example.org")
    assert config.mqtt is not None and config.mqtt.identity == "mqtt:home-assistant"


# --- presence, input rules and watched contacts ------------------------------------------------

PRESENCE_BAD = [
    ("presence.status", "sleeping", "unknown status 'sleeping' (use one of: available, away"),
    ("presence.note", "door {x", "expected '}' before end of string (write {{ and }} for literal"),
    ("presence.note", "door {dor}", "{dor} is not an input or output (known: door, gate, lamp)"),
    ("presence.watchers", ["owner"], None),
    ("presence.watchers", "sip:a@b", "array of strings expected, got string"),
    ("presence.watch", {"Bob": "sip:bob@x"}, None),
    ("presence.watch", {"bob": 3}, None),
    ("presence.watch", {"bob": "bob@x"}, None),
    ("presence.colour", "red", "unknown key"),
    ("gpio.inputs.door.active_state", "up", "'up' is not one of: low, high"),
    ("gpio.inputs.door.active_text", "", "must not be empty"),
    ("gpio.inputs.door.inactive_text", 0, "string expected, got integer"),
    ("gpio.inputs.door.message_to", ["nobody"], None),
    ("gpio.inputs.door.when_active", "busy", "table expected, got string"),
    ("gpio.inputs.door.when_active.status", "sleeping", "unknown status 'sleeping'"),
    ("gpio.inputs.door.when_inactive.note", "{lamp!r}", "{lamp} is not a plain {name} field"),
    ("gpio.inputs.door.when_active.colour", "x", "unknown key"),
]


@pytest.mark.parametrize(
    ("key", "value", "problem"), PRESENCE_BAD, ids=[r[0] for r in PRESENCE_BAD]
)
def test_each_bad_presence_value_is_reported(key: str, value: Any, problem: str | None) -> None:
    (line,) = problems_of(edited({key: value}))
    if problem is not None:
        assert line.startswith(f"{key}: {problem}"), line
    else:
        # Problems inside arrays and tables name the item: presence.watchers[0], ...watch.Bob
        assert line.startswith(key.rsplit(".", 1)[0]), line


def test_a_message_needs_someone_to_send_it_to() -> None:
    assert problems_of(edited({"gpio.inputs.door.when_active.message": "ding"})) == (
        "gpio.inputs.door.message_to: required when when_active/when_inactive send a message",
    )


def test_publish_mode_needs_a_registrar() -> None:
    assert problems_of(edited({"sip.presence": "publish"})) == (
        "sip.presence: 'publish' needs sip.registrar (a presence server); "
        "use 'serve' to answer SUBSCRIBE without one",
    )


def test_presence_and_input_rules_build_the_model() -> None:
    config = parse_config(
        edited(
            {
                "presence.status": "Busy",
                "presence.note": "door {door}",
                "presence.watchers": ['"Eve" <sip:eve@X.org:5060>'],
                "presence.watch": {"bob": "sip:bob@x.org"},
                "gpio.inputs.door.active_state": "high",
                "gpio.inputs.door.active_text": "open",
                "gpio.inputs.door.message_to": ["sip:owner@pbx.example.org"],
                "gpio.inputs.door.when_active": {"status": "dnd", "message": "door {door}"},
            }
        )
    )
    assert config.presence.status == "busy"
    assert config.presence.note == "door {door}"
    assert config.presence.watchers == ("sip:eve@x.org",)
    assert [(w.id, w.uri) for w in config.presence.watch] == [("bob", "sip:bob@x.org")]
    door = config.gpio.inputs[0]
    assert door.active_high is True and door.inverted  # pulled up, yet active high
    assert (door.active_text, door.inactive_text) == ("open", "off")
    assert door.when_active == InputRule("dnd", None, "door {door}")
    assert door.when_inactive == InputRule(None, None, None)
    assert door.message_to == ("sip:owner@pbx.example.org",)
    defaults = parse_config(edited({}))
    assert defaults.presence.watchers is None  # the access.allow list
    assert not defaults.gpio.inputs[0].inverted


def test_disk_memory_and_lockout_bounds_read_as_people_write_them() -> None:
    config = parse_config(
        edited(
            {
                "outbox.max_disk": "2MiB",
                "outbox.max_memory": 0,
                "access.code_failures": 3,
                "access.code_lockout": "1m",
            }
        )
    )
    assert (config.outbox.max_disk, config.outbox.max_memory) == (2 * 1024**2, 0)
    assert (config.access.code_failures, config.access.code_lockout_s) == (3, 60.0)
    defaults = parse_config(edited({}))
    assert (defaults.outbox.max_disk, defaults.outbox.max_memory) == (16 * 1024**2, 4 * 1024**2)
    assert (defaults.access.code_failures, defaults.access.code_lockout_s) == (5, 900.0)
