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
from agent.access import identity_of
from agent.calls import handle_call
from agent.config import Config, OutputConfig
from agent.dispatch import Dispatcher
from agent.events import (
    Event,
    InputChanged,
    MqttConnected,
    MqttDisconnected,
    MqttMessage,
    StopRequested,
)
from agent.logfields import journal_fields
from agent.messages import CommandOutcome, IncomingMessage, relay_record, reply_target, to_json
from agent.presence import PresenceError
from agent.presence_keeper import PresenceKeeper
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

    def output_config(self, name: str) -> OutputConfig: ...

    def output_is_on(self, name: str) -> bool: ...

    def set_output(self, name: str, on: bool) -> None: ...

    def set_level(self, name: str, level: float) -> None: ...

    def pulse(self, name: str, seconds: float) -> None: ...

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None: ...

    def level(self, name: str) -> float: ...

    def state_payload(self, name: str) -> str: ...

    def activity(self, name: str) -> str | None: ...


class Agent:
    """Owns the agent's state; every method runs on the owner thread."""

    def __init__(
        self,
        config: Config,
        sip: Sip,
        outputs: OutputPins,
        mqtt: Publisher | None,
        notifier: Notifier,
        presence: PresenceKeeper | None = None,
    ) -> None:
        self.config = config
        self.presence = presence
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
        self.dispatcher = Dispatcher(config.access, self)

    # -- lifecycle --------------------------------------------------------------------

    def started_sip(self) -> None:
        """Called once the SIP stack runs: direct mode is ready at once."""
        if not self.config.sip.registrar:
            self._become_ready()
        self._publish_registration()
        if self.presence is not None:
            self.presence.start()

    def _become_ready(self) -> None:
        if not self.ready:
            self.ready = True
            log.info("ready: %s", self.status_summary())
            self.notifier.ready(self.status_summary())

    def status_summary(self) -> str:
        reg = self.registration
        sip = f"SIP {reg.state}" + (f" as {reg.public}" if reg.public else "")
        if reg.code or reg.state in ("registering", "failed"):
            sip += f" ({reg.code} {reg.reason})" if reg.code else f" ({reg.reason})"
        if reg.retry_in_s is not None:
            sip += f", retry {reg.attempt} in {reg.retry_in_s:.0f}s"
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
            extra=journal_fields(sip_status=state.code, registration=state.state),
        )
        if state.state == "registered":
            self._become_ready()
            if self.presence is not None:
                self.presence.on_registered()
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
        content_type = msg.content_type.split(";")[0].strip().lower()
        if content_type not in COMMAND_CONTENT_TYPES or commands.is_reply(msg.body):
            log.info("message %s from %s relayed (not a command)", msg.id, msg.from_uri)
            known = self.config.access.rights_of(identity_of(msg.from_uri)) is not None
            return known, None
        outcome = self.dispatcher.handle(msg.from_uri, msg.body, content_type, "SIP")
        return outcome.authorized, CommandOutcome(outcome.name, outcome.target, outcome.reply)

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
        log.log(
            logging.INFO if ok else logging.WARNING,
            "MESSAGE to %s: %d %s",
            to,
            code,
            reason,
            extra=journal_fields(recipient=to, sip_status=code),
        )
        if token is not None and self.topics is not None:
            outcome = {"id": token, "to": to, "ok": ok, "code": code, "reason": reason}
            self._publish(self.topics.message_sent, json.dumps(outcome))

    def on_incoming_call(self, caller: str, source: str) -> int:
        """Every call is rejected; the SIP status to reject it with."""
        c = self.config
        outcome = handle_call(caller, source, c.calls, c.access, self.dispatcher)
        if self.topics is not None:
            self._publish(self.topics.call_in, json.dumps(outcome.record()))
        return outcome.code

    # -- commands' view of the device (commands.Controls) --------------------------------

    def output_names(self) -> Sequence[str]:
        return self.outputs.output_names()

    def output_config(self, name: str) -> OutputConfig:
        return self.outputs.output_config(name)

    def output_is_on(self, name: str) -> bool:
        return self.outputs.output_is_on(name)

    def set_output(self, name: str, on: bool) -> None:
        self.outputs.set_output(name, on)

    def set_level(self, name: str, level: float) -> None:
        self.outputs.set_level(name, level)

    def pulse(self, name: str, seconds: float) -> None:
        self.outputs.pulse(name, seconds)

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None:
        self.outputs.blink(name, on_s, off_s, count)

    def status_lines(self) -> Sequence[str]:
        outs = ", ".join(self._output_status(n) for n in self.output_names())
        return [
            f"outputs: {outs or 'none'}",
            self.status_summary(),
            *(self.presence.status_lines() if self.presence is not None else ()),
            f"uptime {_duration(time.monotonic() - self.started)}",
        ]

    def _output_status(self, name: str) -> str:
        word = "on" if self.outputs.output_is_on(name) else "off"
        if self.outputs.output_config(name).pwm:
            word = f"{round(self.outputs.level(name) * 100, 1):g}%"
        running = self.outputs.activity(name)
        return f"{name} {word}" + (f" ({running})" if running else "")

    def set_presence(self, status: str, note: str | None) -> str:
        """The `presence` command; returns the reply text (`ok: ` or `error: ` is added)."""
        if self.presence is None:
            raise commands.CommandError("presence is not available")
        try:
            return self.presence.set(status, note)
        except PresenceError as err:
            raise commands.CommandError(str(err)) from None

    def on_output_changed(self, name: str, on: bool) -> None:
        """Listener for the GPIO adapter: every change of an output is announced."""
        if self.topics is not None:
            payload = self.outputs.state_payload(name)
            self._publish(self.topics.output_state(name), payload, retain=True)
        if self.presence is not None:
            self.presence.on_output_changed()

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
            case InputChanged(name, active):
                if self.presence is not None:
                    self.presence.on_input(name, active)

    def _announce_state(self) -> None:
        """Retained state again after a (re)connect: the broker may have lost it."""
        for name in self.output_names():
            self.on_output_changed(name, self.outputs.output_is_on(name))
        self._publish_registration()
        if self.presence is not None:
            self.presence.announce()

    def _on_mqtt_message(self, topic: str, payload: bytes) -> None:
        assert self.topics is not None
        text = payload.decode("utf-8", errors="replace")
        if topic == self.topics.message_send:
            self._mqtt_send(text)
        elif topic == self.topics.command:
            self._mqtt_command(text)
        elif (name := self.topics.output_name_from_set(topic)) is not None:
            self._mqtt_set_output(name, text)
        elif topic == self.topics.presence_set and self.presence is not None:
            self.presence.on_mqtt_set(text)

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
        outcome = self.dispatcher.handle(identity, text, "text/plain", "MQTT")
        # MQTT always gets an answer: the broker's ACLs, not silence, keep strangers out.
        result = outcome.reply or "error: forbidden"
        reply = {"command": text, "ok": outcome.ok, "result": result}
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
        elif (level := _json_level(text)) is not None:
            # A PWM level ({"level": 40}) gets the same checks as `set <name> 40%`.
            result = commands.execute(commands.Command("set", name, (f"{level}%",)), self)
            log.log(logging.INFO if result.ok else logging.WARNING, "MQTT set: %s", result.reply)
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


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
