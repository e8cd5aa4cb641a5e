"""The agent's configuration: a tree of frozen records (read from TOML by agent.config.load).

A leaf: it imports nothing else of the agent but `agent.core.record` (a leaf itself, the
frozen dataclass with shared methods), so every layer may use it. Where a field has a
default, that default is the one place it is written; the loader reads it from here
(agent.config.table.default_of) and collects every problem in a file before raising
`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field

from agent.core.record import record


class ConfigError(Exception):
    """A config with problems; `problems` holds every one as a `key: problem` line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


@record
class DeviceConfig:
    """`[device]`: the device's id and name."""

    id: str  # [a-z0-9_-]+ : used in topics and unique ids
    name: str


@record
class SipTlsConfig:
    """[sip.tls]: how the agent checks the server (and proves itself) over TLS.

    The field defaults are the loader's defaults too (one place); `ca_file` None means the
    system store, which the loader resolves to a bundle file when the transport is TLS.
    """

    ca_file: str | None = None
    verify: bool = True  # refuse a server whose certificate does not verify
    cert_file: str | None = None  # a client certificate, for servers that ask for one
    key_file: str | None = None


@record
class SipNatConfig:
    """[sip.nat]: staying reachable behind a home router (see README "NAT, TLS and providers")."""

    rewrite: bool = True  # rport, and Via/Contact from the address the server sees
    keepalive_s: int = 15  # UDP keep-alive (CRLF) interval; 0: none (TCP/TLS: pjsip's 90 s)
    stun: str | None = None  # "host" or "host:port" of a STUN server
    outbound: bool = True  # RFC 5626 (reg-id, +sip.instance) where the server supports it


@record
class SipRecoveryConfig:
    """[sip.recovery]: noticing a lost link or a changed address, and re-registering."""

    check_s: int = 60  # refresh the registration this often to see the public address; 0: off
    retry_min_s: int = 2  # first re-registration delay after a failure
    retry_max_s: int = 60  # the bound of the exponential backoff


@record
class SipLimitsConfig:
    """[sip.limits]: what strangers can make the agent do (README "Threat model")."""

    watchers: int = 128  # live presence subscriptions in total (serve mode)
    watchers_per_sender: int = 8  # ... per address of record
    subscribe_per_s: int = 20  # SUBSCRIBEs taken per second (bursts of twice that)
    # Answers to senders who are not configured (refusals, `error: forbidden` replies,
    # answers to OPTIONS and other requests outside a dialog): per second, bursts of twice.
    stranger_answers_per_s: int = 5
    presence_per_s: int = 5  # presence changes sent out per second; later ones coalesce
    tcp_connections_per_ip: int = 8  # open incoming TCP/TLS connections from one address
    tcp_idle_s: int = 30  # an incoming connection that sends no request for this long closes


@record
class SipConfig:
    """`[sip]`: the account, its transport, NAT, TLS and recovery settings."""

    uri: str  # the account identity, canonical SipUri text
    registrar: str | None  # None: direct mode, no REGISTER
    proxy: str | None  # outbound proxy, may carry ;lr
    username: str
    password: str | None
    transport: str  # udp | tcp | tls
    listen_host: str  # an address to bind; IPv6 without brackets ("::1")
    listen_port: int  # 0: any free port
    presence: str  # publish | serve | off
    reg_expires: int
    user_agent: str
    realm: str
    tls: SipTlsConfig = SipTlsConfig()
    nat: SipNatConfig = SipNatConfig()
    recovery: SipRecoveryConfig = SipRecoveryConfig()
    # Routed mode: "proxy" takes requests only from the registrar's and proxy's addresses
    # (and `trusted`); "anyone" takes them from any address, as direct mode must.
    accept_from: str = "proxy"
    trusted: tuple[str, ...] = ()  # more addresses, networks or host names counted as the proxy
    limits: SipLimitsConfig = field(default_factory=SipLimitsConfig)
    # pjsip's DNS resolver (agent.core.nameservers): None: /etc/resolv.conf's; (): off.
    nameservers: tuple[str, ...] | None = None
    name: str = "main"  # which account ([[sip.accounts]]): topics, `"account"` in sends

    @property
    def routed(self) -> bool:
        """Requests go through a registrar or proxy (which authenticates senders)."""
        return bool(self.registrar or self.proxy)


@record
class UserRights:
    """What one sender may do (access.users.<identity>); None means everything."""

    identity: str  # address of record, or an MQTT identity ("mqtt:local")
    commands: tuple[str, ...] | None
    outputs: tuple[str, ...] | None
    totp_secret: bytes | None  # key for one-time codes (outputs in access.require_code)


@record
class AccessConfig:
    """`[access]`: who may do what, one-time codes and rate limits."""

    allow: tuple[str, ...]  # addresses of record (see agent.core.sipuri.address_of_record)
    on_forbidden: str  # reply | silent
    users: tuple[UserRights, ...]  # per-user rights; `allow` entries have all rights
    require_code: tuple[str, ...]  # outputs that only move with a one-time code (TOTP)
    rate_per_minute: int  # commands per sender per minute, after a burst of `rate_burst`
    rate_burst: int
    max_message_bytes: int  # longer bodies are not read as commands
    code_failures: int = 5  # wrong one-time codes for a secret before its codes are locked
    code_lockout_s: float = 900.0  # how long (doubling per lockout in a row, up to 16 times)

    def rights_of(self, identity: str) -> UserRights | None:
        """The rights of a normalized identity, or None for a stranger."""
        for user in self.users:
            if user.identity == identity:
                return user
        if identity in self.allow:
            return UserRights(identity, None, None, None)
        return None


@record
class Broker:
    """One of `mqtt.hosts` (agent.core.brokers has the policy of which one is used)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@record
class MqttConfig:
    """`[mqtt]`: the broker(s), credentials, topics and delivery settings."""

    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str
    base_topic: str
    qos: int
    keepalive: int
    discovery_prefix: str  # "": no Home Assistant discovery
    tls: bool
    ca_file: str | None
    identity: str  # whom commands on <base>/command act as, for access rules
    reconnect_max_s: int  # longest pause between reconnect attempts (paho doubles from 1 s)
    send_timeout_s: int  # how long B/message/send waits for SIP registration
    send_retries: int  # further attempts after a transient SIP failure (408, 5xx)
    notify_to: str | None  # Home Assistant notify entity's recipient; None: no notify entity
    # Fleet commands: also heard on <group_prefix>/<name>/command for each name.
    groups: tuple[str, ...] = ()
    group_prefix: str = "sipagent/group"
    # mqtt.hosts (or just mqtt.host:mqtt.port), the preferred first (policy: agent.core.brokers).
    brokers: tuple[Broker, ...] = ()
    failback_s: int = 300  # look back at the preferred broker this often; 0: never
    max_payload: int = 16384  # bytes: the largest B/message/send payload read
    max_pending: int = 5000  # MQTT messages waiting for the owner loop; more are dropped


@record
class OutputConfig:
    """`[gpio.outputs.<name>]`: one output pin."""

    name: str
    pin: str  # "GPIO<n>" (BCM numbering)
    active_high: bool
    initial: bool
    safe: bool  # the state to leave the pin in on shutdown
    pwm: bool  # a PWM output: `set <name> <0-100>%`
    frequency_hz: int  # PWM frequency
    level_min: int  # allowed PWM range in percent (0, off, is always allowed)
    level_max: int
    pulse_s: float  # `pulse <name>` without a duration
    max_pulse_s: float  # the longest pulse, and the longest blink phase
    # Home Assistant: a button that pulses it ("Open gate") instead of a switch; the default
    # is whether `pulse` is written in the config (a gate, a door strike).
    button: bool = False
    label: str = ""  # the entity's name in Home Assistant ("" : from the output's name)


@record
class InputRule:
    """What an input does when it becomes active (or inactive): each part is optional."""

    status: str | None  # presence status to set
    note: str | None  # presence note template to set ("door {door}")
    message: str | None  # text of a SIP MESSAGE to the input's message_to


NO_RULE = InputRule(None, None, None)


@record
class InputConfig:
    """`[gpio.inputs.<name>]`: one input pin and what its changes do."""

    name: str
    pin: str  # "GPIO<n>" (BCM numbering)
    pull_up: bool
    bounce_ms: int
    # Presence and messages (agent.core.presence_keeper); defaults keep older constructors valid.
    active_high: bool | None = None  # None: the usual for the pull (pull-up: active low)
    active_text: str = "on"  # how {name} reads in a note while active ("open")
    inactive_text: str = "off"
    when_active: InputRule = NO_RULE
    when_inactive: InputRule = NO_RULE
    message_to: tuple[str, ...] = ()
    trigger: bool = False  # Home Assistant device triggers "pressed"/"released" (a doorbell)
    label: str = ""  # the name in Home Assistant ("" : from the input's name)

    @property
    def inverted(self) -> bool:
        """True when the configured active level is the opposite of gpiozero's for the pull."""
        return self.active_high is not None and self.active_high == self.pull_up


@record
class GpioConfig:
    """`[gpio]`: the pin factory, outputs and inputs."""

    pin_factory: str  # auto | lgpio | rpigpio | pigpio | native | mock
    outputs: tuple[OutputConfig, ...]  # in config-file order
    inputs: tuple[InputConfig, ...]

    def output(self, name: str) -> OutputConfig | None:
        """The output called `name`, or None."""
        return next((o for o in self.outputs if o.name == name), None)

    def input(self, name: str) -> InputConfig | None:
        """The input called `name`, or None."""
        return next((i for i in self.inputs if i.name == name), None)


@record
class CallConfig:
    """`[calls]`: how incoming calls are answered."""

    reject_code: int  # the SIP status every incoming INVITE is answered with
    action: str | None  # a command run for a caller allowed to run it, e.g. "pulse gate 2s"


@record
class WatchConfig:
    """One contact of `[presence.watch]`."""

    id: str  # [a-z0-9_-]+ : B/buddy/<id>/state
    uri: str


@record
class PresenceConfig:
    """`[presence]`: the status and note at start, watchers, watched contacts."""

    status: str  # the status at start (agent.core.presence.STATUSES)
    note: str  # the note template at start, e.g. "door {door}"
    watchers: tuple[str, ...] | None  # who may SUBSCRIBE (serve mode); None: access.allow
    watch: tuple[WatchConfig, ...]  # contacts whose presence the agent subscribes to


DEFAULT_PRESENCE = PresenceConfig("available", "", None, ())


@record
class OutboxConfig:
    """`[outbox]`: where events wait for the broker, and how many."""

    # None: $STATE_DIRECTORY/outbox.db, else /var/lib/sipagent (agent.config.statedir)
    path: str | None
    capacity: int  # most events kept while the broker is away
    when_full: str  # drop_oldest | refuse
    synchronous: str  # normal (survives a crash) | full (survives a power cut too)
    # Bytes on disk for the database and its WAL together (agent.adapters.outbox.model.Quota).
    max_disk: int = 16 * 1024**2
    # Bytes of events held in memory while the disk cannot take them (full, read-only, ...).
    max_memory: int = 4 * 1024**2


DEFAULT_OUTBOX = OutboxConfig(None, 10000, "drop_oldest", "normal")


@record
class LogConfig:
    """`[log]`: how much is logged."""

    level: str  # debug | info | warning | error


@record
class WatchdogConfig:
    """`[watchdog]`: how long failures are tolerated before a restart."""

    registration_grace_s: int  # failing registration tolerated this long before restarts
    outbox_stuck_s: int  # an outbox holding work without delivering for this long is stuck


@record
class Config:
    """The whole configuration, as read and checked from the TOML file."""

    device: DeviceConfig
    sip: SipConfig
    access: AccessConfig
    mqtt: MqttConfig | None  # None: run without MQTT
    gpio: GpioConfig
    log: LogConfig
    calls: CallConfig
    watchdog: WatchdogConfig
    source: str  # the file it came from, or "<embedded default>"
    presence: PresenceConfig = DEFAULT_PRESENCE
    outbox: OutboxConfig = DEFAULT_OUTBOX
    more_accounts: tuple[SipConfig, ...] = ()  # [[sip.accounts]] (agent.config.accounts)

    @property
    def accounts(self) -> tuple[SipConfig, ...]:
        """Every SIP account, `sip` (the first, the one presence uses) first."""
        return (self.sip, *self.more_accounts)

    @property
    def uses_tls(self) -> bool:
        """Whether anything the agent connects to is reached over TLS (SIP or MQTT)."""
        return any(a.transport == "tls" for a in self.accounts) or bool(self.mqtt and self.mqtt.tls)
