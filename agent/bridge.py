"""The home-automation bridge: everything the agent says and hears on MQTT (owner thread).

Events (`message/in`, `message/sent`, `command/result`) go through the durable outbox and
reach the broker in order, at least once. Retained state goes straight to the link and is
announced again on every connect and whenever Home Assistant says it is back online, with the
discovery configs; entities that disappeared from the config get an empty retained config.
"""

from __future__ import annotations

import enum
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from agent import commands, discovery
from agent.config import Config
from agent.dispatch import Dispatcher
from agent.events import Event, MqttConnected, MqttDisconnected, MqttMessage, MqttPublished
from agent.messages import CommandOutcome, IncomingMessage, relay_record, to_json
from agent.outbox import Outbox, OutboxError
from agent.outgoing import Outgoing, Request
from agent.relay import Delivery
from agent.sip_send import SipError
from agent.sipuri import InvalidSipUri, parse_sip_uri
from agent.topics import Topics, ha_status_topic

log = logging.getLogger(__name__)


class Stored(enum.Enum):
    """What became of an incoming MESSAGE in the outbox."""

    DURABLY = "durably"
    ALREADY = "already"  # a retransmission of one stored (and acted on) before
    NOT = "not"  # the outbox refused it (full) or failed (the disk)


class Link(Protocol):
    connected: bool
    session: int

    @property
    def broker(self) -> str: ...  # "host:port" connected to (or tried next)

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None: ...

    def publish_event(
        self, topic: str, payload: bytes | str, *, retain: bool = False, session: int | None = None
    ) -> int | None: ...


class Sender(Protocol):
    def send_message(
        self, to: str, body: str, content_type: str = "text/plain", token: str | None = None
    ) -> None: ...


class Device(commands.Controls, Protocol):
    dispatcher: Dispatcher

    def announce_state(self) -> None:
        """Publish every retained state (outputs, registration, ...) through the bridge."""

    def on_mqtt_presence(self, text: str) -> None:
        """`B/presence/set`: the presence keeper decides."""


class Bridge:
    def __init__(
        self, config: Config, link: Link, outbox: Outbox, sip: Sender, device: Device
    ) -> None:
        assert config.mqtt is not None
        self.config = config
        self.mqtt = config.mqtt
        self.topics = Topics.of(config.mqtt)
        self.link = link
        self.sip = sip
        self.device = device
        self.delivery = Delivery(outbox, link, self._publish_outbox_status)
        self.outgoing = Outgoing(
            self._send,
            self._report_sent,
            timeout_s=config.mqtt.send_timeout_s,
            retries=config.mqtt.send_retries,
        )
        prefix = config.mqtt.discovery_prefix
        self._ha_status = ha_status_topic(prefix) if prefix else None
        self._rows: dict[str, int] = {}  # message id -> outbox row, until its outcome is known
        self._undurable: set[str] = set()  # accepted while the outbox could not store

    # -- SIP side -----------------------------------------------------------------------

    def accept(self, msg: IncomingMessage, authorized: bool) -> Stored:
        """Store an incoming MESSAGE first of all."""
        record = relay_record(msg, authorized, None)
        try:
            added = self.delivery.add(self.topics.message_in, to_json(record), msg.request_key)
        except OutboxError as err:
            # A full disk must not silence the agent: relay it the undurable way, say so.
            log.error(
                "MESSAGE %s from %s not stored (%s): relayed without the outbox",
                msg.id,
                msg.from_uri,
                err,
            )
            self._undurable.add(msg.id)
            return Stored.NOT
        if added.duplicate:
            log.info(
                "MESSAGE from %s is a retransmission of %s: not relayed again",
                msg.from_uri,
                msg.request_key,
            )
            return Stored.ALREADY
        if added.id is None:
            return Stored.NOT  # refused: the outbox is full (when_full = "refuse")
        self._rows[msg.id] = added.id
        return Stored.DURABLY

    def withdraw(self, msg: IncomingMessage) -> None:
        """Forget a MESSAGE that was not stored and that its sender will send again (500)."""
        self._undurable.discard(msg.id)

    def settle(
        self, msg: IncomingMessage, authorized: bool, outcome: CommandOutcome | None
    ) -> None:
        """The message's command outcome is known: complete its record and send it on."""
        if msg.id in self._undurable:
            self._undurable.discard(msg.id)
            record = relay_record(msg, authorized, outcome)
            self.link.publish_event(self.topics.message_in, to_json(record))
            return
        row = self._rows.pop(msg.id, None)
        if row is not None and outcome is not None:
            try:
                self.delivery.outbox.replace(row, to_json(relay_record(msg, authorized, outcome)))
            except OutboxError as err:
                log.error("MESSAGE %s: its command outcome is not stored: %s", msg.id, err)

    def sip_ready(self, ready: bool) -> None:
        """SIP can (or can no longer) send: registered, or direct mode."""
        self.outgoing.set_ready(ready)

    def on_message_status(self, token: str | None, to: str, code: int, reason: str) -> None:
        if token is not None:
            self.outgoing.on_status(token, code, reason)

    # -- state --------------------------------------------------------------------------

    def publish_state(self, topic: str, payload: bytes | str) -> None:
        """Retained state: sent now if connected; announced again on every connect anyway."""
        self.link.publish(topic, payload, retain=True)

    def announce(self) -> None:
        """Discovery configs first (Home Assistant then subscribes), then the state itself."""
        if self.mqtt.discovery_prefix:
            self._announce_discovery()
        self.device.announce_state()
        self._publish_outbox_status(self.delivery.status())

    def _announce_discovery(self) -> None:
        outbox = self.delivery.outbox
        configs = discovery.announcements(self.config)
        for topic in sorted(outbox.announced() - configs.keys()):
            # An empty retained config is how Home Assistant learns an entity is gone.
            log.info("discovery: removing %s (no longer in the config)", topic)
            self.link.publish(topic, b"", retain=True)
        for topic, payload in configs.items():
            self.link.publish(topic, payload, retain=True)
        if self.link.connected:
            outbox.set_announced(configs)

    def _publish_outbox_status(self, status: dict[str, object]) -> None:
        self.link.publish(self.topics.outbox, json.dumps(status), retain=True)

    def status_line(self) -> str:
        return self.delivery.summary()

    # -- inbox events -------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        match event:
            case MqttPublished(mid):
                self.delivery.on_published(mid)
            case MqttConnected():
                self.delivery.restart(self.link.session)
                self.announce()
                self.delivery.pump()
            case MqttDisconnected():
                self.delivery.restart(None)
            case MqttMessage(topic, payload):
                self._on_mqtt_message(topic, payload)

    def flush(self) -> None:
        """Once per loop turn, after the inbox is drained."""
        self.delivery.pump()
        self.delivery.flush()
        self.outgoing.tick()

    def _on_mqtt_message(self, topic: str, payload: bytes) -> None:
        text = payload.decode("utf-8", errors="replace")
        if topic == self.topics.message_send:
            self._mqtt_send(text)
        elif topic == self.topics.command:
            self._mqtt_command(text)
        elif (group := self.topics.group_of_command(topic)) is not None:
            self._mqtt_command(text, group)
        elif (name := self.topics.output_name_from_set(topic)) is not None:
            self._mqtt_set_output(name, text)
        elif topic == self.topics.presence_set:
            self.device.on_mqtt_presence(text)
        elif topic == self._ha_status and text.strip() == "online":
            log.info("Home Assistant is online: announcing discovery and state again")
            self.announce()

    def event(self, topic: str, record: dict[str, object]) -> None:
        """A QoS 1 event: stored in the outbox, published in order."""
        payload = json.dumps(record).encode()
        try:
            self.delivery.add(topic, payload)
        except OutboxError as err:
            log.error("event on %s not stored (%s): published without the outbox", topic, err)
            self.link.publish_event(topic, payload)
        self.delivery.pump()

    # -- B/message/send -----------------------------------------------------------------

    def _mqtt_send(self, text: str) -> None:
        token = str(uuid.uuid4())
        to: object = ""
        try:
            try:
                request = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"invalid JSON: {err.msg}") from None
            if not isinstance(request, dict):
                raise ValueError('expected a JSON object {"to": "sip:…", "body": "…"}')
            token = str(request.get("id") or token)
            to, body = request.get("to"), request.get("body")
            content_type = request.get("content_type", "text/plain")
            if not isinstance(to, str) or not isinstance(body, str):
                raise ValueError('"to" and "body" must be strings')
            if not isinstance(content_type, str):
                raise ValueError('"content_type" must be a string')
            try:
                parse_sip_uri(to)  # refuse at once what no registration could make sendable
            except InvalidSipUri as err:
                raise ValueError(str(err)) from None
        except ValueError as err:
            log.warning("message/send refused: %s", err)
            outcome = {"id": token, "to": to, "ok": False, "code": None, "reason": str(err)}
            self._report_sent({**outcome, "attempts": 0})
            return
        self.outgoing.submit(token, to, body, content_type)

    def _send(self, request: Request) -> None:
        try:
            self.sip.send_message(request.to, request.body, request.content_type, request.token)
        except SipError as err:
            raise ValueError(str(err)) from None

    def _report_sent(self, outcome: dict[str, object]) -> None:
        self.event(self.topics.message_sent, outcome)

    # -- B/command, B/output/<name>/set ---------------------------------------------------

    def _mqtt_command(self, text: str, group: str | None = None) -> None:
        """`B/command`, or a group's command (same rules): the result on our own topic."""
        via = "MQTT" if group is None else f"MQTT group {group}"
        outcome = self.device.dispatcher.handle(self.mqtt.identity, text, "text/plain", via)
        # MQTT always gets an answer: the broker's ACLs, not silence, keep strangers out.
        result = outcome.reply or "error: forbidden"
        record: dict[str, object] = {"command": text, "ok": outcome.ok, "result": result}
        if group is not None:
            record["group"] = group  # whoever sent it to the fleet knows which answers are its
        self.event(self.topics.command_result, record)

    def _mqtt_set_output(self, name: str, text: str) -> None:
        names: Sequence[str] = self.device.output_names()
        if name not in names:
            log.warning("MQTT set for unknown output %r ignored", name)
            return
        word = text.strip().upper()
        if word in ("ON", "OFF"):
            self.device.set_output(name, word == "ON")
        elif word == "TOGGLE":
            self.device.set_output(name, not self.device.output_is_on(name))
        elif (level := _json_level(text)) is not None:
            # A PWM level ({"level": 40}) gets the same checks as `set <name> 40%`.
            result = commands.execute(commands.Command("set", name, (f"{level}%",)), self.device)
            log.log(logging.INFO if result.ok else logging.WARNING, "MQTT set: %s", result.reply)
        else:
            log.warning("MQTT set %s: %r is not ON, OFF or TOGGLE", name, _excerpt(text))


def _json_level(text: str) -> float | None:
    """The level of a `{"level": 40}` payload, or None."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    level = data.get("level") if isinstance(data, dict) else None
    if isinstance(level, int | float) and not isinstance(level, bool):
        return float(level)
    return None


def _excerpt(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
