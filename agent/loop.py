"""The owner loop: builds the adapters, turns the pjsua2 crank, drains the inbox, shuts down.

This is the only thread that calls pjsua2 (see the brief's architecture rules).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import date
from types import FrameType

from agent.binding import detect
from agent.capabilities import Capabilities, log_capabilities
from agent.config import Config
from agent.core import Agent
from agent.counters import Counters
from agent.events import MqttPublished
from agent.gpio import Outputs
from agent.health import Health, HealthPolicy
from agent.heap import HeapTrimmer
from agent.inbox import Inbox
from agent.inputs import Inputs
from agent.mqtt import MqttLink
from agent.outbox import Outbox, default_path
from agent.presence_keeper import PresenceKeeper
from agent.service import Notifier
from agent.sip import SipStack
from agent.sip_presence import SipPresence
from agent.sipload import SipLoad
from agent.timers import Timers
from agent.topics import Topics

log = logging.getLogger(__name__)

# The longest the loop sleeps when nothing happens; anything posted wakes it at once.
# 1 s costs ~0.1 % of a core idle (FIELD-NOTES.md), 10 ms would cost 0.4 %.
IDLE_WAIT_S = 1.0
# A loop turn that takes longer than this is a hang, even if the loop later comes back.
LOOP_STALL_S = 10.0


class Runner:
    """Owns the adapters for one run of the agent."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.inbox = Inbox()
        self.counters = Counters()
        self.notifier = Notifier()
        self.health = Health(
            HealthPolicy(
                config.watchdog.registration_grace_s, config.watchdog.outbox_stuck_s, LOOP_STALL_S
            ),
            time.monotonic(),
        )
        # The outbox plugs in below (`health.outbox_probe`, agent.health.OutboxProbe).
        self.notifier.status_extra = self.health.status_suffix
        self.timers = Timers()
        self.outputs = Outputs(config.gpio, timers=self.timers)
        self.mqtt = (
            MqttLink(config.mqtt, Topics.of(config.mqtt), self.inbox) if config.mqtt else None
        )
        self.sip = SipStack(config.sip)
        self.sip.counters = self.counters
        # The outbox exists for the MQTT relay; without a broker nothing needs keeping.
        self.outbox = (
            Outbox(
                config.outbox.path or default_path(),
                capacity=config.outbox.capacity,
                when_full=config.outbox.when_full,
                synchronous=config.outbox.synchronous,
            )
            if self.mqtt is not None
            else None
        )
        self.inputs = Inputs(config.gpio.inputs, self.inbox.put)
        self.presence = PresenceKeeper(
            config,
            SipPresence(self.sip),
            self.inputs,
            self.outputs,
            self.mqtt,
            self.sip.send_message,
            Topics(config.mqtt.base_topic if config.mqtt else f"sipagent/{config.device.id}"),
        )
        self.sip.subscribe_policy = self.presence.authorize_watcher
        self.agent = Agent(
            config,
            self.sip,
            self.outputs,
            self.mqtt,
            self.notifier,
            presence=self.presence,
            outbox=self.outbox,
            counters=self.counters,
        )
        if self.agent.bridge is not None:
            self.health.outbox_probe = self.agent.bridge.delivery.health
        self.sip.listener = self.agent
        self.outputs.set_listener(self.agent.on_output_changed)
        self._signal_stop: str | None = None
        self.heap = HeapTrimmer()
        self.load = SipLoad(None)  # pjsip's transactions and Timer J, once SIP runs
        self.caps: Capabilities | None = None

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop; safe from any thread and from a signal handler."""
        # A plain attribute write: a signal handler must not take the inbox's lock,
        # which the interrupted owner thread may be holding.
        self._signal_stop = reason
        self.sip.wake()

    def run(self) -> int:
        self.sip.start()
        caps = self.caps = detect(self.sip.version, self.sip.c_api)
        log_capabilities(caps)
        self.load = SipLoad(self.sip.c_api, can_refuse=self.sip.defers_answers)
        self.agent.about += [lambda: caps.status_line(date.today()), self.load.summary]
        self.notifier.status_extra = self._status_extra
        self.inbox.set_waker(self.sip.wake)
        self._install_signal_handlers()
        self.outputs.apply_initial()
        self.agent.started_sip()
        if self.mqtt is not None:
            self.mqtt.start()
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _loop(self) -> None:
        interval = self.notifier.watchdog_interval_s
        next_ping = time.monotonic()
        while True:
            if self._signal_stop is not None:
                self.agent.stop_reason = self.agent.stop_reason or self._signal_stop
            if self.agent.stop_reason is not None:
                return
            now = time.monotonic()
            if interval is not None and now >= next_ping:
                # Pinging from this loop (not a timer thread) is the point: a hung loop
                # stops the pings, and so does a sick agent (agent.health); systemd then
                # restarts the service.
                if self.health.check(now).healthy:
                    self.notifier.watchdog()
                self.notifier.status(self.agent.status_summary())  # outbox depth, health
                next_ping = now + interval
            self.health.turned(now, self.agent.registration.state)
            wait = IDLE_WAIT_S if interval is None else min(IDLE_WAIT_S, next_ping - now)
            timer = self.timers.seconds_to_next()
            if timer is not None:
                # Round up: waking a little before a pulse's end would only wait again.
                wait = min(wait, timer + 0.0005)
            self.sip.poll(int(wait * 1000 + 0.5))
            # Bounded memory at any rate: Timer J and, with deferred answers, 503 (sipload).
            self.sip.answers.refusing = self.load.tick().refusing
            self.heap.seen(self.sip.messages_received, now)
            self.heap.due(now)
            for event in self.inbox.drain():
                self.agent.handle(event)
            self.timers.run_due()
            self.agent.flush()

    def _shutdown(self) -> None:
        started = time.monotonic()
        reason = self.agent.stop_reason or "error"
        log.info("stopping (%s)", reason)
        self.notifier.stopping(f"stopping ({reason})")
        self.agent.stopping()
        self.outputs.apply_safe()
        self.presence.close()
        self.sip.shutdown(timeout_s=1.0)
        self.inbox.set_waker(None)
        if self.mqtt is not None:
            self.mqtt.stop()
            # Acknowledgements that arrived while stopping need not be sent again next time;
            # nothing else is acted on after the outputs went to their safe state.
            for event in self.inbox.drain():
                if isinstance(event, MqttPublished):
                    self.agent.handle(event)
            self.agent.flush()
        if self.outbox is not None:
            self.outbox.close()
        self.inputs.close()
        self.outputs.close()
        log.info("stopped in %.2fs", time.monotonic() - started)

    def _status_extra(self) -> str:
        """STATUS= after the agent's own part: health, and what the SIP stack lacks."""
        parts = [self.health.status_suffix()]
        if self.caps is not None and not self.caps.deferred_responses:
            parts.append(f"pjproject {self.caps.pjproject}: 200 before storing")
        if self.caps is not None and (missing := len(self.caps.missing())):
            parts.append(f"lacks {missing} security fixes")
        if self.load.state.refusing:
            parts.append("SIP overloaded: refusing MESSAGE")
        return "; ".join(p for p in parts if p)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)

        # The C-level handler writes to this fd at once, so a loop waiting inside
        # libHandleEvents wakes up and the Python handler runs without delay.
        signal.set_wakeup_fd(self.sip.wake_fd(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def run(config: Config) -> int:
    return Runner(config).run()
