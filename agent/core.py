"""The agent's behaviour on the owner thread: what each SIP callback and inbox event does.

The adapters (SIP, MQTT, GPIO, systemd) are passed in; this module decides and delegates.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from agent import commands
from agent.access import identity_of
from agent.answers import NOT_STORED, OK
from agent.bridge import Bridge, Link, Stored
from agent.calls import handle_call
from agent.config import Config, OutputConfig
from agent.counters import Counters
from agent.dedupe import RecentRequests
from agent.dispatch import Dispatcher
from agent.events import Event, InputChanged, MqttConnected, MqttDisconnected, StopRequested
from agent.logfields import journal_fields
from agent.messages import CommandOutcome, IncomingMessage, reply_target
from agent.outbox import Outbox
from agent.presence import PresenceError
from agent.presence_keeper import PresenceKeeper
from agent.service import Notifier
from agent.sip import RegState
from agent.sip_send import SipError

log = logging.getLogger(__name__)

COMMAND_CONTENT_TYPES = ("text/plain", "application/json")


class Sip(Protocol):
    routed: bool
    defers_answers: bool  # pjproject 2.16+: MESSAGE is answered by `answer`, else by pjsua

    def answer(self, msg: IncomingMessage, code: int, reason: str) -> None: ...

    def send_message(
        self, to: str, body: str, content_type: str = "text/plain", token: str | None = None
    ) -> None: ...


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
        mqtt: Link | None,
        notifier: Notifier,
        presence: PresenceKeeper | None = None,
        outbox: Outbox | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.config = config
        # What was refused, dropped or limited, for status and MQTT (shared with the adapters).
        self.counters = counters if counters is not None else Counters()
        self.presence = presence
        self.sip = sip
        self.outputs = outputs
        self.mqtt = mqtt
        self.notifier = notifier
        # Everything MQTT-facing lives in the bridge; without a broker there is none.
        self.bridge: Bridge | None = None
        if mqtt is not None:
            # Without an outbox of its own (unit tests) it gets one in memory: not durable.
            outbox = outbox if outbox is not None else Outbox(":memory:")
            self.bridge = Bridge(config, mqtt, outbox, sip, self)
        # Without an outbox, retransmissions are recognised in memory (agent.dedupe).
        self.recent = RecentRequests(on_forget=self._forgot) if self.bridge is None else None
        self.registration = RegState("direct", 0, "no registrar", 0)
        if config.sip.registrar:
            self.registration = RegState("unregistered", 0, "not yet registered", 0)
        self.ready = False
        # More `status` lines from the adapters: the SIP stack's version and load.
        self.about: list[Callable[[], str]] = []
        self.stop_reason: str | None = None
        self.started = time.monotonic()
        self.dispatcher = Dispatcher(config.access, self)

    # -- lifecycle --------------------------------------------------------------------

    def started_sip(self) -> None:
        """Called once the SIP stack runs: direct mode is ready at once."""
        if not self.config.sip.registrar:
            self._become_ready()
        self._sip_ready_changed()
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
        if self.mqtt is None or not self.mqtt.connected:
            return "disconnected"
        return f"connected to {self.mqtt.broker}"  # which of mqtt.hosts, after a failover

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
            self._sip_ready_changed()

    def _sip_ready_changed(self) -> None:
        if self.bridge is not None:
            self.bridge.sip_ready(self.registration.state in ("registered", "direct"))

    def on_message(self, msg: IncomingMessage) -> None:
        known = self.config.access.rights_of(identity_of(msg.from_uri)) is not None  # no I/O
        if not self._accept(msg, known):
            return
        allowed, outcome = self._handle_message(msg, known)
        if outcome is not None:
            self._reply(msg, outcome.result)
        if self.bridge is not None:
            self.bridge.settle(msg, allowed, outcome)

    def _accept(self, msg: IncomingMessage, known: bool) -> bool:
        """Store the message before anything else, then answer; False: do nothing more.

        pjsua 2.15 has answered 200 already: storing first means neither a broker outage nor
        a crash from here on can lose it. With 2.16+ the 200 goes out only now (agent.answers).
        """
        if self.bridge is not None:
            stored = self.bridge.accept(msg, known)
            if stored is Stored.NOT and self.sip.defers_answers:
                # The sender still has it: 500 makes it try again. Nothing is relayed or done.
                self.bridge.withdraw(msg)
                self.sip.answer(msg, *NOT_STORED)
                return False
            repeat = stored is Stored.ALREADY
        else:
            assert self.recent is not None
            repeat = self.recent.repeat(msg.request_key, time.monotonic())
            if repeat:
                log.info("MESSAGE from %s repeats %s: ignored", msg.from_uri, msg.request_key)
        # Stored, or (without an outbox) about to be handed to the dispatcher.
        self.sip.answer(msg, *OK)
        return not repeat  # a retransmission of one accepted (and acted on) before

    def _forgot(self) -> None:
        self.counters.bump("sip.dedupe.forgotten")

    def _handle_message(
        self, msg: IncomingMessage, known: bool
    ) -> tuple[bool, CommandOutcome | None]:
        """Decide what a message means; returns (authorized, command outcome or None)."""
        content_type = msg.content_type.split(";")[0].strip().lower()
        if content_type not in COMMAND_CONTENT_TYPES or commands.is_reply(msg.body):
            log.info("message %s from %s relayed (not a command)", msg.id, msg.from_uri)
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
        if self.bridge is not None:
            self.bridge.on_message_status(token, to, code, reason)

    def on_incoming_call(self, caller: str, source: str) -> int:
        """Every call is rejected; the SIP status to reject it with."""
        c = self.config
        outcome = handle_call(caller, source, c.calls, c.access, self.dispatcher)
        if self.bridge is not None:
            self.bridge.event(self.bridge.topics.call_in, outcome.record())
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
            *([self.bridge.status_line()] if self.bridge is not None else ()),
            *(line() for line in self.about),
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
        if self.bridge is not None:
            topic = self.bridge.topics.output_state(name)
            self.bridge.publish_state(topic, self.outputs.state_payload(name))
        if self.presence is not None:
            self.presence.on_output_changed()

    # -- inbox events -------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        match event:
            case StopRequested(reason):
                self.stop_reason = self.stop_reason or reason
            case InputChanged(name, active):
                if self.presence is not None:
                    self.presence.on_input(name, active)
            case _ if self.bridge is not None:
                self.bridge.handle(event)
        if isinstance(event, MqttConnected | MqttDisconnected):
            self.notifier.status(self.status_summary())

    def flush(self) -> None:
        """Once per loop turn, after the inbox was drained: batched work of the bridge."""
        if self.bridge is not None:
            self.bridge.flush()

    def stopping(self) -> None:
        """Before the adapters stop: open MQTT sends are reported (durably), not dropped."""
        if self.bridge is not None:
            self.bridge.outgoing.abandon("agent stopped before the MESSAGE was sent")
            self.bridge.flush()

    def on_mqtt_presence(self, text: str) -> None:
        """`B/presence/set`, routed here by the bridge."""
        if self.presence is not None:
            self.presence.on_mqtt_set(text)

    def announce_state(self) -> None:
        """Retained state again after a (re)connect: the broker may have lost it."""
        for name in self.output_names():
            self.on_output_changed(name, self.outputs.output_is_on(name))
        self._publish_registration()
        if self.presence is not None:
            self.presence.announce()

    # -- helpers ----------------------------------------------------------------------

    def _publish_registration(self) -> None:
        if self.bridge is not None:
            payload = json.dumps(self.registration.as_dict())
            self.bridge.publish_state(self.bridge.topics.registration, payload)


def _excerpt(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
