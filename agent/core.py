"""The agent's behaviour on the owner thread: what each SIP callback and inbox event does.

The adapters (SIP, MQTT, GPIO, systemd) are passed in; this module decides and delegates.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

from agent import commands
from agent.access import authorize
from agent.config import Config
from agent.events import Event, MqttConnected, MqttDisconnected, MqttMessage, StopRequested
from agent.messages import CommandOutcome, IncomingMessage, relay_record, reply_target, to_json
from agent.service import Notifier
from agent.sip import RegState, SipError
from agent.topics import Topics

log = logging.getLogger(__name__)

COMMAND_CONTENT_TYPES = ("text/plain", "application/json")


class Sip(Protocol):
    routed: bool

    def send_message(
        self, to: str, body: str, content_type: str = "text/plain", token: str | None = None
    ) -> None: ...


class Publisher(Protocol):
    connected: bool

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None: ...


class OutputPins(Protocol):
    def output_names(self) -> Sequence[str]: ...

    def output_is_on(self, name: str) -> bool: ...

    def set_output(self, name: str, on: bool) -> None: ...


class Agent:
    """Owns the agent's state; every method runs on the owner thread."""

    def __init__(
        self,
        config: Config,
        sip: Sip,
        outputs: OutputPins,
        mqtt: Publisher | None,
        notifier: Notifier,
    ) -> None:
        self.config = config
        self.sip = sip
        self.outputs = outputs
        self.mqtt = mqtt
        self.notifier = notifier
        self.topics = Topics(config.mqtt.base_topic) if config.mqtt else None
        self.registration = RegState("direct", 0, "no registrar", 0)
        if config.sip.registrar:
            self.registration = RegState("unregistered", 0, "not yet registered", 0)
        self.ready = False
        self.stop_reason: str | None = None
        self.started = time.monotonic()

    # -- lifecycle --------------------------------------------------------------------

    def started_sip(self) -> None:
        """Called once the SIP stack runs: direct mode is ready at once."""
        if not self.config.sip.registrar:
            self._become_ready()
        self._publish_registration()

    def _become_ready(self) -> None:
        if not self.ready:
            self.ready = True
            log.info("ready: %s", self.status_summary())
            self.notifier.ready(self.status_summary())

    def status_summary(self) -> str:
        reg = self.registration
        sip = f"SIP {reg.state}" + (f" ({reg.code} {reg.reason})" if reg.code else "")
        mqtt = "MQTT off" if self.mqtt is None else f"MQTT {self._mqtt_word()}"
        return f"{sip}; {mqtt}"

    def _mqtt_word(self) -> str:
        return "connected" if self.mqtt is not None and self.mqtt.connected else "disconnected"

    # -- SIP callbacks ----------------------------------------------------------------

    def on_registration(self, state: RegState) -> None:
        previous = self.registration
        self.registration = state
        level = logging.INFO if state.state != "failed" else logging.WARNING
        log.log(
            level,
            "registration %s for %s: %d %s (expires %ds)",
            state.state,
            self.config.sip.uri,
            state.code,
            state.reason,
            state.expires,
        )
        if state.state == "registered":
            self._become_ready()
        if state != previous:
            self.notifier.status(self.status_summary())
            self._publish_registration()

    def on_message(self, msg: IncomingMessage) -> None:
        allowed, outcome = self._handle_message(msg)
        if outcome is not None:
            self._reply(msg, outcome.result)
        if self.topics is not None:
            self._publish(self.topics.message_in, to_json(relay_record(msg, allowed, outcome)))

    def _handle_message(self, msg: IncomingMessage) -> tuple[bool, CommandOutcome | None]:
        """Decide what a message means; returns (authorized, command outcome or None)."""
        decision = authorize(msg.from_uri, self.config.access.allow)
        content_type = msg.content_type.split(";")[0].strip().lower()
        if content_type not in COMMAND_CONTENT_TYPES or commands.is_reply(msg.body):
            log.info("message %s from %s relayed (not a command)", msg.id, msg.from_uri)
            return decision.allowed, None
        try:
            cmd: commands.Command | None = commands.parse_command(msg.body, content_type)
        except commands.CommandError as err:
            cmd, parse_error = None, str(err)
        if not decision.allowed:
            log.warning("refused %r from %s: %s", _excerpt(msg.body), msg.from_uri, decision.reason)
            if self.config.access.on_forbidden == "silent":
                return False, CommandOutcome(cmd and cmd.name, cmd and cmd.target, "")
            return False, CommandOutcome(cmd and cmd.name, cmd and cmd.target, "error: forbidden")
        result = commands.execute(cmd, self) if cmd else commands.Result(False, parse_error)
        log.info("command %r from %s: %s", _excerpt(msg.body), msg.from_uri, result.reply)
        return True, CommandOutcome(cmd and cmd.name, cmd and cmd.target, result.reply)

    def _reply(self, msg: IncomingMessage, text: str) -> None:
        if not text:
            return  # silence was configured for this sender
        target = reply_target(msg, routed=self.sip.routed)
        try:
            self.sip.send_message(target, text)
        except SipError as err:
            log.warning("reply to %s not sent: %s", target, err)

    def on_message_status(self, token: str | None, to: str, code: int, reason: str) -> None:
        ok = 200 <= code < 300
        log.log(logging.INFO if ok else logging.WARNING, "MESSAGE to %s: %d %s", to, code, reason)
        if token is not None and self.topics is not None:
            outcome = {"id": token, "to": to, "ok": ok, "code": code, "reason": reason}
            self._publish(self.topics.message_sent, json.dumps(outcome))

    # -- commands' view of the device (commands.Controls) --------------------------------

    def output_names(self) -> Sequence[str]:
        return self.outputs.output_names()

    def output_is_on(self, name: str) -> bool:
        return self.outputs.output_is_on(name)

    def set_output(self, name: str, on: bool) -> None:
        self.outputs.set_output(name, on)

    def status_lines(self) -> Sequence[str]:
        outs = ", ".join(
            f"{n} {'on' if self.outputs.output_is_on(n) else 'off'}" for n in self.output_names()
        )
        return [
            f"outputs: {outs or 'none'}",
            self.status_summary(),
            f"uptime {_duration(time.monotonic() - self.started)}",
        ]

    def on_output_changed(self, name: str, on: bool) -> None:
        """Listener for the GPIO adapter: every change of an output is announced."""
        if self.topics is not None:
            self._publish(self.topics.output_state(name), "ON" if on else "OFF", retain=True)

    # -- inbox events -------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        match event:
            case StopRequested(reason):
                self.stop_reason = self.stop_reason or reason
            case MqttConnected():
                self._announce_state()
                self.notifier.status(self.status_summary())
            case MqttDisconnected():
                self.notifier.status(self.status_summary())
            case MqttMessage(topic, payload):
                self._on_mqtt_message(topic, payload)

    def _announce_state(self) -> None:
        """Retained state again after a (re)connect: the broker may have lost it."""
        for name in self.output_names():
            self.on_output_changed(name, self.outputs.output_is_on(name))
        self._publish_registration()

    def _on_mqtt_message(self, topic: str, payload: bytes) -> None:
        assert self.topics is not None
        text = payload.decode("utf-8", errors="replace")
        if topic == self.topics.message_send:
            self._mqtt_send(text)
        elif topic == self.topics.command:
            self._mqtt_command(text)
        elif (name := self.topics.output_name_from_set(topic)) is not None:
            self._mqtt_set_output(name, text)

    def _mqtt_send(self, text: str) -> None:
        assert self.topics is not None
        token = str(uuid.uuid4())
        to = ""
        try:
            try:
                request = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"invalid JSON: {err.msg}") from None
            if not isinstance(request, dict):
                raise ValueError('expected a JSON object {"to": "sip:…", "body": "…"}')
            token = str(request.get("id") or token)
            to, body = request.get("to"), request.get("body")
            if not isinstance(to, str) or not isinstance(body, str):
                raise ValueError('"to" and "body" must be strings')
            content_type = request.get("content_type", "text/plain")
            self.sip.send_message(to, body, str(content_type), token=token)
        except (ValueError, SipError) as err:
            log.warning("message/send refused: %s", err)
            outcome = {"id": token, "to": to, "ok": False, "code": None, "reason": str(err)}
            self._publish(self.topics.message_sent, json.dumps(outcome))

    def _mqtt_command(self, text: str) -> None:
        assert self.topics is not None
        identity = self.config.mqtt.identity if self.config.mqtt else ""
        decision = authorize(identity, self.config.access.allow)
        if not decision.allowed:
            log.warning("refused MQTT command %r: %s", _excerpt(text), decision.reason)
            result = commands.Result(False, "forbidden")
        else:
            try:
                result = commands.execute(commands.parse_command(text), self)
            except commands.CommandError as err:
                result = commands.Result(False, str(err))
            log.info("MQTT command %r: %s", _excerpt(text), result.reply)
        reply = {"command": text, "ok": result.ok, "result": result.reply}
        self._publish(self.topics.command_result, json.dumps(reply))

    def _mqtt_set_output(self, name: str, text: str) -> None:
        if name not in self.output_names():
            log.warning("MQTT set for unknown output %r ignored", name)
            return
        word = text.strip().upper()
        if word in ("ON", "OFF"):
            self.set_output(name, word == "ON")
        elif word == "TOGGLE":
            self.set_output(name, not self.outputs.output_is_on(name))
        else:
            log.warning("MQTT set %s: %r is not ON, OFF or TOGGLE", name, _excerpt(text))

    # -- helpers ----------------------------------------------------------------------

    def _publish_registration(self) -> None:
        if self.topics is not None:
            payload = json.dumps(self.registration.as_dict())
            self._publish(self.topics.registration, payload, retain=True)

    def _publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        if self.mqtt is not None:
            self.mqtt.publish(topic, payload, retain=retain)


def _excerpt(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
