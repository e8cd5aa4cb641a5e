"""The home-automation bridge: everything the agent says and hears on MQTT (owner thread).

Events (`message/in`, `message/sent`, `command/result`) go through the durable outbox and
reach the broker in order, at least once. Retained state goes straight to the link and is
announced again on every connect and whenever Home Assistant says it is back online, with the
discovery configs; entities that disappeared from the config get an empty retained config.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from agent.config.model import Config
from agent.core import commands, discovery
from agent.core.containment import LogThrottle
from agent.core.counters import Counters
from agent.core.cpim import CONTENT_TYPE as CPIM_TYPE
from agent.core.dispatch import Dispatcher
from agent.core.events import (
    Event,
    MqttConnected,
    MqttDisconnected,
    MqttMessage,
    MqttOversize,
    MqttPublished,
)
from agent.core.jsonin import JsonInputError, loads
from agent.core.messages import CommandOutcome, IncomingMessage, relay_record, to_json
from agent.core.mqtt_requests import SendRefused, parse_send
from agent.core.outgoing import Outgoing, Request
from agent.core.ports import Link, Outbox, Sip, SipError
from agent.core.receipts import Receipts
from agent.core.record import record
from agent.core.relay import Delivery
from agent.core.topics import COMMAND_KINDS, Topics
from agent.core.untrusted import excerpt

log = logging.getLogger(__name__)


@record
class Acceptance:
    """What became of an incoming MESSAGE offered to the outbox."""

    duplicate: bool  # a retransmission of one already accepted: do not act on it again
    durable: bool  # on disk (or a duplicate of one that is); False: held in memory, or not kept


class Device(commands.Controls, Protocol):
    dispatcher: Dispatcher
    counters: Counters
    receipts: Receipts

    def announce_state(self) -> None:
        """Publish every retained state (outputs, registration, ...) through the bridge."""

    def on_mqtt_presence(self, text: str, part: str = "both") -> str | None:
        """`B/presence/set` (or only its status or its note): the presence keeper decides.

        Returns why it refused it, or None.
        """


# Which part of the presence each presence topic sets (Home Assistant sets them apart).
_PRESENCE_PARTS = {
    "presence_set": "both",
    "presence_status_set": "status",
    "presence_note_set": "note",
}


class Bridge:
    def __init__(
        self, config: Config, link: Link, outbox: Outbox, sip: Sip, device: Device
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
        self._refusals = LogThrottle()  # one line a minute per kind of refusal in a flood
        self._rows: dict[str, int] = {}  # message id -> outbox row, until its outcome is known

    # -- SIP side -----------------------------------------------------------------------

    def accept(
        self, msg: IncomingMessage, authorized: bool, *, memory_ok: bool = True
    ) -> Acceptance:
        """Keep an incoming MESSAGE first of all (disk, else memory; agent.adapters.outbox.store).

        `memory_ok=False` is for a caller that answers only after this (pjproject 2.16+,
        deferred responses): the message is kept only if it is on disk, so `durable` False
        means "answer 500, it was not kept", and the sender's retry finds a disk or not.
        """
        record = relay_record(msg, authorized, None)
        added = self.delivery.add(
            self.topics.message_in, to_json(record), msg.request_key, memory_ok=memory_ok
        )
        if added.duplicate:
            log.info(
                "MESSAGE from %s is a retransmission of %s: not relayed again",
                msg.from_uri,
                msg.request_key,
            )
            return Acceptance(duplicate=True, durable=True)
        if added.id is not None:
            self._rows[msg.id] = added.id
        return Acceptance(duplicate=False, durable=added.durable)

    def settle(
        self, msg: IncomingMessage, authorized: bool, outcome: CommandOutcome | None
    ) -> None:
        """The message's command outcome is known: complete its record and send it on."""
        row = self._rows.pop(msg.id, None)
        if row is not None and outcome is not None:
            self.delivery.outbox.replace(row, to_json(relay_record(msg, authorized, outcome)))

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
            case MqttMessage(topic, payload, retained):
                self._on_mqtt_message(topic, payload, retained)
            case MqttOversize(topic, size, limit, retained):
                self._on_oversize(topic, size, limit, retained)

    def flush(self) -> None:
        """Once per loop turn, after the inbox is drained."""
        self.delivery.pump()
        self.delivery.flush()
        self.outgoing.tick()

    def _on_mqtt_message(self, topic: str, payload: bytes, retained: bool) -> None:
        kind = self.topics.kind(topic)
        if retained and kind in COMMAND_KINDS:
            # A command kept by the broker is not a command given now: obeying it would
            # repeat it at every start. Not cleared either: that needs write access to the
            # command topic, and would send every other subscriber an empty command.
            self._refused(kind, "retained", f"retained message on {excerpt(topic)} ignored")
            return
        text = payload.decode("utf-8", errors="replace")
        if kind == "message_send":
            self._mqtt_send(payload)
        elif kind == "command":
            self._mqtt_command(text)
        elif kind == "group_command":
            self._mqtt_command(text, self.topics.group_of_command(topic))
        elif kind == "output_set":
            self._mqtt_set_output(self.topics.output_name_from_set(topic) or "", text)
        elif kind in _PRESENCE_PARTS:
            refusal = self.device.on_mqtt_presence(text, part=_PRESENCE_PARTS[kind])
            if refusal is not None:
                what = f"{kind} {excerpt(text, 60)!r} refused: {refusal}"
                self._refused(kind, "invalid", what)
        elif kind == "ha_status" and text.strip() == "online":
            log.info("Home Assistant is online: announcing discovery and state again")
            self.announce()

    def _on_oversize(self, topic: str, size: int, limit: int, retained: bool) -> None:
        kind = self.topics.kind(topic) or "unknown"
        reason = f"payload of {size} bytes is longer than {limit} bytes"
        self._refused(kind, "oversize", f"{excerpt(topic)}: {reason}")
        if retained:
            return  # nobody is waiting for an answer to what the broker kept
        if kind in ("command", "group_command"):
            group = self.topics.group_of_command(topic)
            self._command_result("", False, f"error: {reason}", group)
        elif kind == "message_send":
            outcome = {"id": str(uuid.uuid4()), "to": "", "ok": False, "code": None}
            self._report_sent({**outcome, "reason": reason, "attempts": 0})

    def _refused(self, kind: str, fate: str, what: str) -> None:
        """Count `mqtt.<kind>.<fate>`; say so in the log, at most once a minute in a flood."""
        name = f"mqtt.{kind}.{fate}"
        self.device.counters.bump(name)
        times = self._refusals.due(name)
        if times is not None:
            more = "" if times == 1 else f" ({times} times since the last report)"
            log.warning("MQTT %s%s", what, more)

    def event(self, topic: str, record: dict[str, object]) -> None:
        """A QoS 1 event: stored in the outbox, published in order."""
        self.delivery.add(topic, json.dumps(record).encode())
        self.delivery.pump()

    # -- B/message/send -----------------------------------------------------------------

    def _mqtt_send(self, payload: bytes) -> None:
        try:
            request = parse_send(payload)
        except SendRefused as err:
            self._refused("message_send", "invalid", f"message/send refused: {err}")
            token = err.id or str(uuid.uuid4())
            outcome = {"id": token, "to": err.to, "ok": False, "code": None, "reason": str(err)}
            self._report_sent({**outcome, "attempts": 0})
            return
        token = request.id or str(uuid.uuid4())
        by = next((a for a in self.config.accounts if a.name == request.account), None)
        if by is None and request.account is not None:
            names = ", ".join(a.name for a in self.config.accounts)
            reason = f"no SIP account {request.account!r} (accounts: {names})"
            self._refused("message_send", "invalid", f"message/send refused: {reason}")
            outcome = {"id": token, "to": request.to, "ok": False, "code": None, "reason": reason}
            self._report_sent({**outcome, "attempts": 0})
            return
        body, content_type = request.body, request.content_type
        if request.notify:
            sender = (by or self.config.sip).uri
            body = self.device.receipts.wrap(token, request.to, sender, body, content_type)
            content_type = CPIM_TYPE
        self.outgoing.submit(token, request.to, body, content_type, request.account)

    def _send(self, request: Request) -> None:
        try:
            self.sip.send_message(
                request.to, request.body, request.content_type, request.token, request.account
            )
        except SipError as err:
            raise ValueError(str(err)) from None

    def _report_sent(self, outcome: dict[str, object]) -> None:
        self.event(self.topics.message_sent, outcome)

    # -- B/command, B/output/<name>/set ---------------------------------------------------

    def _mqtt_command(self, text: str, group: str | None = None) -> None:
        """`B/command`, or a group's command (same rules): the result on our own topic."""
        via = "MQTT" if group is None else f"MQTT group {group}"
        outcome = self.device.dispatcher.handle(
            self.mqtt.identity, text, "text/plain", via, source="mqtt"
        )
        # MQTT always gets an answer: the broker's ACLs, not silence, keep strangers out.
        self._command_result(text, outcome.ok, outcome.reply or "error: forbidden", group)

    def _command_result(self, text: str, ok: bool, result: str, group: str | None) -> None:
        # The command is echoed only in part: the answer to a long one must not repeat it.
        record: dict[str, object] = {"command": excerpt(text), "ok": ok, "result": result}
        if group is not None:
            record["group"] = group  # whoever sent it to the fleet knows which answers are its
        self.event(self.topics.command_result, record)

    def _mqtt_set_output(self, name: str, text: str) -> None:
        names: Sequence[str] = self.device.output_names()
        if name not in names:
            self._refused("output_set", "invalid", f"set for unknown output {excerpt(name)!r}")
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
            what = f"set {name}: {excerpt(text, 60)!r} is not ON, OFF, TOGGLE or a level"
            self._refused("output_set", "invalid", what)


def _json_level(text: str) -> float | None:
    """The level of a `{"level": 40}` payload, or None."""
    try:
        data = loads(text)
    except JsonInputError:
        return None
    level = data.get("level") if isinstance(data, dict) else None
    if isinstance(level, int | float) and not isinstance(level, bool):
        return float(level)
    return None
