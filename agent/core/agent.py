"""The agent's behaviour on the owner thread: what each SIP callback and inbox event does.

The adapters (SIP, MQTT, GPIO, systemd) are passed in; this module decides and delegates.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.config.model import Config
from agent.core import accounts, chat, commands
from agent.core.access import identity_of, senders_authenticated
from agent.core.bridge import Bridge
from agent.core.budget import TokenBucket
from agent.core.calls import handle_call
from agent.core.counters import Counters
from agent.core.device import DeviceControls
from agent.core.diagnostics import Diagnostics
from agent.core.dispatch import Dispatcher
from agent.core.events import (
    Event,
    InputChanged,
    MqttConnected,
    MqttDisconnected,
    StatusLogRequested,
    StopRequested,
)
from agent.core.intake import Intake
from agent.core.logfields import journal_fields
from agent.core.lograte import LogThrottle
from agent.core.messages import CommandOutcome, IncomingMessage, reply_target
from agent.core.ports import Link, Notifier, Outbox, OutputPins, Sip, SipError
from agent.core.presence_keeper import PresenceKeeper
from agent.core.receipts import Receipts
from agent.core.registration import RegState

if TYPE_CHECKING:  # agent.core.codes loads only where a user has a secret (dispatch)
    from agent.core.codes import Store

log = logging.getLogger(__name__)

COMMAND_CONTENT_TYPES = ("text/plain", "application/json")
# What a message cut short is answered with (pjsip's PJSIP_MAX_PKT_LEN: README "Limits").
TRUNCATED_REPLY = (
    "error: message cut short (this device reads at most 4000 bytes of a SIP message, "
    "headers included); not carried out"
)


class Agent(DeviceControls):
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
        code_store: Store | None = None,
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
            if outbox is None:
                raise TypeError("an MQTT link needs an outbox to relay through")
            self.bridge = Bridge(config, mqtt, outbox, sip, self)
        # Keeps each MESSAGE first and answers it (2.16+: only once it is kept).
        self.intake = Intake(sip, self.bridge, self.counters)
        first = RegState("direct", 0, "no registrar", 0)
        if config.sip.registrar:
            first = RegState("unregistered", 0, "not yet registered", 0)
        # Per account ([[sip.accounts]]); `registration` is the device's as a whole (agent.
        # accounts: registered when any account is).
        self.registrations = {a.name: first for a in config.accounts}
        self.registration = first
        self.ready = False
        self._outbox_trouble: str | None = None
        # More `status` lines from the adapters: the SIP stack's version and load.
        self.about: list[Callable[[], str]] = []
        self.stop_reason: str | None = None
        self.started = time.monotonic()
        self.dispatcher = Dispatcher(
            config.access, self, code_store=code_store, counters=self.counters
        )
        # Replies to strangers and to refused users look alike unless someone vouches for
        # the From (agent.core.dispatch).
        self.senders_authenticated = senders_authenticated(config.sip)
        # Replies to strangers are bounded (sip.limits.stranger_answers_per_s): the budget is
        # shared with the request gate's refusals (agent.loop wires it).
        self.strangers = TokenBucket(config.sip.limits.stranger_answers_per_s)
        # Delivery notices (IMDN) both ways, within the same budget for strangers.
        self.receipts = Receipts(
            lambda to, body, content_type, account: sip.send_message(
                to, body, content_type, account=account
            ),
            self.counters,
            self.strangers,
            routed=sip.routed,
            authenticated=self.senders_authenticated,
            own_uri=lambda account: accounts.uri_of(self.config, account),
        )
        self._quiet = LogThrottle(log)
        # pjproject version, outdated or not, the last error (B/diagnostics, `status`).
        self.diagnostics = Diagnostics()
        self._diagnostics_due = 0.0

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
        sip = "SIP " + accounts.summary(self.registrations)
        mqtt = "MQTT off" if self.mqtt is None else f"MQTT {self._mqtt_word()}"
        return f"{sip}; {mqtt}"

    def _mqtt_word(self) -> str:
        if self.mqtt is None or not self.mqtt.connected:
            return "disconnected"
        return f"connected to {self.mqtt.broker}"  # which of mqtt.hosts, after a failover

    def reconfigure(self, config: Config) -> None:
        """A reload's config (agent.core.reload decided what of it applies): rules, limits,
        presence; Home Assistant hears about changed buttons and names at once."""
        self.config = config
        self.dispatcher.reconfigure(config.access)
        if self.presence is not None:
            self.presence.reconfigure(config)
        if self.bridge is not None:
            self.bridge.config = config
            self.bridge.announce()

    # -- SIP callbacks ----------------------------------------------------------------

    def on_registration(self, state: RegState, account: str | None = None) -> None:
        account = account or self.config.sip.name  # None: the first account
        previous = self.registrations.get(account)
        self.registrations[account] = state
        self.registration = accounts.overall(self.registrations)
        level = logging.INFO if state.state != "failed" else logging.WARNING
        log.log(
            level,
            "registration %s for %s: %d %s (expires %ds)",
            state.state,
            accounts.uri_of(self.config, account),
            state.code,
            state.reason,
            state.expires,
            extra=journal_fields(sip_status=state.code, registration=state.state),
        )
        if state.state == "registered":
            self._become_ready()  # the first account to register (agent.core.accounts says why)
            if self.presence is not None and account == self.config.sip.name:
                self.presence.on_registered()  # presence goes out by the first account
        if state != previous:
            self.notifier.status(self.status_summary())
            self._publish_registration()
            self._sip_ready_changed()

    def _sip_ready_changed(self) -> None:
        if self.bridge is not None:
            self.bridge.sip_ready(self.registration.state in ("registered", "direct"))

    def is_known(self, sender: str) -> bool:
        """`sender` is someone the config names (no I/O: for the request gate too)."""
        return self.config.access.rights_of(identity_of(sender)) is not None

    def on_message(self, msg: IncomingMessage) -> None:
        # CPIM unwrapped, notices and typing told apart (agent.core.chat: pure, bounded).
        reading = chat.read(msg)
        if reading.kind != "message":
            record = self.receipts.on_signal(reading)
            if record is not None and self.bridge is not None:
                self.bridge.event(self.bridge.topics.message_sent, record)
            return
        msg = reading.message
        # A From of another account's domain is nobody's to vouch for: a stranger here.
        misrouted = accounts.misrouted(self.config, msg.account, msg.from_uri)
        known = misrouted is None and self.is_known(msg.from_uri)
        if not self.intake.accept(msg, known):
            return  # a retransmission, or (2.16+) not kept and answered 500
        self.receipts.notify(msg, reading.request, "delivered", known)
        problem = reading.problem or misrouted
        if problem is None:
            allowed, outcome = self._handle_message(msg, known)
        else:  # relayed as it came, never obeyed
            self.counters.bump(f"sip.message.{'misrouted' if misrouted else 'unreadable'}")
            log.warning("message %s from %s: %s: not obeyed", msg.id, msg.from_uri, problem)
            allowed, outcome = False, None
        if outcome is not None:
            self._reply(msg, outcome.result, known)
            self.receipts.notify(msg, reading.request, "displayed", known)
        if self.bridge is not None:
            self.bridge.settle(msg, allowed, outcome)

    def _handle_message(
        self, msg: IncomingMessage, known: bool
    ) -> tuple[bool, CommandOutcome | None]:
        """Decide what a message means; returns (authorized, command outcome or None)."""
        content_type = msg.content_type.split(";")[0].strip().lower()
        if content_type not in COMMAND_CONTENT_TYPES or commands.is_reply(msg.body):
            log.info("message %s from %s relayed (not a command)", msg.id, msg.from_uri)
            return known, None
        if msg.truncated:
            # Never obeyed: what is left of a command may mean something else.
            self.counters.bump("sip.message.truncated")
            log.warning("message %s from %s was cut short: not carried out", msg.id, msg.from_uri)
            return False, CommandOutcome(None, None, TRUNCATED_REPLY)
        outcome = self.dispatcher.handle(
            msg.from_uri,
            msg.body,
            content_type,
            "SIP",
            source=msg.source,
            authenticated=self.senders_authenticated,
        )
        return outcome.authorized, CommandOutcome(outcome.name, outcome.target, outcome.reply)

    def _reply(self, msg: IncomingMessage, text: str, known: bool) -> None:
        if not text:
            return  # silence was configured for this sender
        if not known and not self.strangers.take():
            self.counters.bump("sip.reply.stranger_budget.dropped")
            self._quiet.warning(
                "reply", "replies to strangers over sip.limits.stranger_answers_per_s dropped"
            )
            return
        target = reply_target(msg, routed=self.sip.routed)
        try:
            self.sip.send_message(target, text, account=msg.account)
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

    # -- inbox events -------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        match event:
            case StopRequested(reason):
                self.stop_reason = self.stop_reason or reason
            case StatusLogRequested(source):
                self.log_status(source)
            case InputChanged(name, active):
                if self.presence is not None:
                    self.presence.on_input(name, active)
            case _ if self.bridge is not None:
                self.bridge.handle(event)
        if isinstance(event, MqttConnected | MqttDisconnected):
            self.notifier.status(self.status_summary())

    def log_status(self, why: str) -> None:
        """The `status` reply and every non-zero counter, in the log (SIGUSR1/SIGUSR2)."""
        counts = ", ".join(f"{k} {v}" for k, v in self.counters.snapshot().items())
        log.info("status (%s): %s; counters: %s", why, "; ".join(self.status_lines()),
                 counts or "none")  # fmt: skip

    def flush(self) -> None:
        """Once per loop turn, after the inbox was drained: batched work of the bridge."""
        if self.bridge is not None:
            self.bridge.flush()
            now = time.monotonic()
            # An error storm publishes at most once a second; the newest error wins.
            if now >= self._diagnostics_due and (payload := self.diagnostics.changed()):
                self._diagnostics_due = now + 1.0
                self.bridge.publish_state(self.bridge.topics.diagnostics, json.dumps(payload))
            trouble = self.bridge.delivery.outbox.trouble
            if trouble != self._outbox_trouble:
                # STATUS= says at once when events stop (or start again) going to disk.
                self._outbox_trouble = trouble
                self.notifier.status(self.status_summary())

    def stopping(self) -> None:
        """Before the adapters stop: open MQTT sends are reported (durably), not dropped."""
        if self.bridge is not None:
            self.bridge.outgoing.abandon("agent stopped before the MESSAGE was sent")
            self.bridge.flush()

    def on_mqtt_presence(self, text: str, part: str = "both") -> str | None:
        """`B/presence/set` (part "both"), `B/presence/status/set` or `.../note/set`.

        Returns why it was refused, or None.
        """
        if self.presence is None:
            return None
        if part == "status":
            return self.presence.on_mqtt_status(text)
        if part == "note":
            return self.presence.on_mqtt_note(text)
        return self.presence.on_mqtt_set(text)

    def announce_state(self) -> None:
        """Retained state again after a (re)connect: the broker may have lost it."""
        for name in self.output_names():
            self.on_output_changed(name, self.outputs.output_is_on(name))
        self._publish_registration()
        if self.presence is not None:
            self.presence.announce()
        if self.bridge is not None:
            payload = json.dumps(self.diagnostics.payload())
            self.bridge.publish_state(self.bridge.topics.diagnostics, payload)

    # -- helpers ----------------------------------------------------------------------

    def _publish_registration(self) -> None:
        if self.bridge is None:
            return
        # B/registration stays the first account's; with several, each has its own too.
        first = self.registrations[self.config.sip.name]
        self.bridge.publish_state(self.bridge.topics.registration, json.dumps(first.as_dict()))
        if len(self.registrations) > 1:
            for name, state in self.registrations.items():
                topic = self.bridge.topics.account_registration(name)
                self.bridge.publish_state(topic, json.dumps(state.as_dict()))
