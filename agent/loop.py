"""The owner loop: builds the adapters, turns the pjsua2 crank, drains the inbox, shuts down.

This is the only thread that calls pjsua2 (README "Architecture", docs/pjsip.md).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date
from functools import partial

from agent.adapters import signals
from agent.adapters.codestore import CodeFile
from agent.adapters.gpio import Outputs
from agent.adapters.heap import HeapTrimmer
from agent.adapters.inputs import Inputs
from agent.adapters.mqtt import MqttLink
from agent.adapters.outbox.store import Outbox
from agent.adapters.service import Notifier
from agent.adapters.sip.binding import detect
from agent.adapters.sip.presence import SipPresence
from agent.adapters.sip.stack import SipStack
from agent.adapters.status_socket import StatusServer, server_path
from agent.config.load import load_config
from agent.config.model import Config
from agent.config.statedir import outbox_path, state_dir
from agent.core.agent import Agent
from agent.core.capabilities import log_capabilities
from agent.core.containment import Guard, LogThrottle, describe, event_name
from agent.core.counters import Counters
from agent.core.events import (
    Event,
    MqttPublished,
    ReloadRequested,
    StatusLogRequested,
    StatusRequested,
)
from agent.core.health import Health, HealthPolicy
from agent.core.mqtt_requests import PayloadBounds
from agent.core.presence_keeper import PresenceKeeper
from agent.core.reloader import Reloader
from agent.core.sipload import SipLoad
from agent.core.throttle import Throttle
from agent.core.timers import Timers
from agent.core.topics import Topics
from agent.inbox import DEFAULT_MAX_PENDING, Inbox

log = logging.getLogger(__name__)

# The longest the loop sleeps when nothing happens; anything posted wakes it at once.
# 1 s costs ~0.1 % of a core idle (docs/pjsip.md), 10 ms would cost 0.4 %.
IDLE_WAIT_S = 1.0
# A loop turn that takes longer than this is a hang, even if the loop later comes back.
LOOP_STALL_S = 10.0


class Runner:
    """Owns the adapters for one run of the agent."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.inbox = Inbox(config.mqtt.max_pending if config.mqtt else DEFAULT_MAX_PENDING)
        self.counters = Counters()
        # No event's handler can stop the loop: a failure is logged, counted and dropped.
        self.guard = Guard(self.counters)
        self._drop_log = LogThrottle()
        self.notifier = Notifier()
        self.health = Health(
            HealthPolicy(
                config.watchdog.registration_grace_s, config.watchdog.outbox_stuck_s, LOOP_STALL_S
            ),
            time.monotonic(),
        )
        # The outbox plugs in below (`health.outbox_probe`, agent.core.health.OutboxProbe).
        self.notifier.status_extra = self.health.status_suffix
        self.timers = Timers()
        self.outputs = Outputs(config.gpio, timers=self.timers)
        self.mqtt = (
            MqttLink(
                config.mqtt,
                Topics.of(config.mqtt),
                self.inbox,
                PayloadBounds(config.access.max_message_bytes, config.mqtt.max_payload),
            )
            if config.mqtt
            else None
        )
        self.sip = SipStack(
            config.sip,
            self.counters,
            config.more_accounts,
            uses_tls=config.uses_tls,
        )
        # The outbox exists for the MQTT relay; without a broker nothing needs keeping.
        self.outbox = (
            Outbox(
                outbox_path(config.outbox.path),
                capacity=config.outbox.capacity,
                when_full=config.outbox.when_full,
                synchronous=config.outbox.synchronous,
                max_disk=config.outbox.max_disk,
                max_memory=config.outbox.max_memory,
                counters=self.counters,
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
            # Spent one-time codes and lockouts outlive a restart (agent.core.codes).
            code_store=CodeFile(state_dir(config.outbox.path)),
        )
        if self.agent.bridge is not None:
            self.health.outbox_probe = self.agent.bridge.delivery.health
        self.sip.listener = self.agent
        # The request gate asks the agent who is known, what a call does, who may watch;
        # answers to strangers share one budget (the gate's refusals, the agent's replies).
        gate = self.sip.policy
        gate.known = self.agent.is_known
        gate.on_call = self.agent.on_incoming_call
        gate.may_watch = self.presence.authorize_watcher
        gate.strangers = self.agent.strangers
        self.outputs.set_listener(self.agent.on_output_changed)
        self._signal_stop: str | None = None
        self._signal_log = Throttle()  # ignored signals: said once, then once a minute
        self.heap = HeapTrimmer()
        self.reloader = Reloader(config, self.agent, self.outputs, load_config)
        path = server_path()
        self.status_server = StatusServer(path, self.inbox.put) if path else None
        self.load = SipLoad(None)  # pjsip's transactions and Timer J, once SIP runs

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop; safe from any thread."""
        self._signal_stop = reason
        self.sip.wake()

    def run(self) -> int:
        # First of all: a signal during the start must not kill the agent either.
        self._install_signal_handlers()
        self.sip.start()
        self._wake_on_signals()
        caps = self.agent.diagnostics.capabilities = detect(self.sip.version, self.sip.c_api)
        log_capabilities(caps)
        self.load = SipLoad(self.sip.c_api, can_refuse=self.sip.defers_answers)
        self.agent.about += [lambda: caps.status_line(date.today()), self.load.summary]
        self.notifier.status_extra = self._status_extra
        logging.getLogger().addHandler(self.agent.diagnostics.errors)
        self.inbox.set_waker(self.sip.wake)
        self.outputs.apply_initial()
        self.agent.started_sip()
        if self.mqtt is not None:
            self.mqtt.start()
        if self.status_server is not None:
            self.status_server.start()
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _loop(self) -> None:
        interval = self.notifier.watchdog_interval_s
        next_ping = time.monotonic()
        while True:
            self._take_signals()
            if self._signal_stop is not None:
                self.agent.stop_reason = self.agent.stop_reason or self._signal_stop
            if self.agent.stop_reason is not None:
                return
            now = time.monotonic()
            if interval is not None and now >= next_ping:
                # Pinging from this loop (not a timer thread) is the point: a hung loop
                # stops the pings, and so does a sick agent (agent.core.health); systemd then
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
            self._take_signals()  # before the inbox: reload and status requests go there
            # Bounded memory at any rate: Timer J and, with deferred answers, 503 (sipload).
            self.sip.answers.refusing = self.load.tick().refusing
            self.heap.seen(self.sip.messages_received, now)
            self.heap.due(now)
            self._handle_inbox()
            self.timers.run_due()
            self.guard.run("loop.flush", self.agent.flush)

    def _handle_inbox(self) -> None:
        for event in self.inbox.drain():
            handle, detail = partial(self._handle, event), partial(describe, event)
            self.guard.run(event_name(event), handle, detail)
        dropped = self.inbox.take_dropped()
        if dropped:
            self.counters.bump("mqtt.inbox.dropped", dropped)
            told = self._drop_log.due("mqtt.inbox.dropped", dropped)
            if told is not None:
                log.warning(
                    "dropped %d MQTT message(s) from broker clients: %d messages "
                    "(mqtt.max_pending) or %d bytes were already waiting",
                    told,
                    self.inbox.max_pending,
                    self.inbox.max_pending_bytes,
                )

    def _handle(self, event: Event) -> None:
        match event:
            case ReloadRequested():
                self._reload()
            case StatusRequested(reply):
                extra = {}
                if self.status_server is not None:
                    extra["status.client.refused"] = self.status_server.refused
                    extra["status.request.refused"] = self.status_server.bad
                if reply.set_running_or_notify_cancel():
                    # Imported at the first request, not at start (agent.lean's reason).
                    from agent.core.status_report import snapshot

                    reply.set_result(snapshot(self.agent, extra, self.reloader.last))
            case _:
                self.agent.handle(event)

    def _reload(self) -> None:
        ready = self.agent.ready
        if ready:
            self.notifier.reloading()
        outcome = self.reloader.reload()
        self.config = self.reloader.config
        summary = f"{self.agent.status_summary()}; {outcome}"
        if ready:
            self.notifier.ready(summary)  # READY=1 again ends systemd's "reloading"
        else:
            self.notifier.status(summary)

    def _shutdown(self) -> None:
        started = time.monotonic()
        reason = self.agent.stop_reason or "error"
        log.info("stopping (%s)", reason)
        self.notifier.stopping(f"stopping ({reason})")
        self.agent.stopping()
        self.outputs.apply_safe()
        self.presence.close()
        if self.status_server is not None:
            self.status_server.close()
        signals.set_waker(None)  # the wake socket closes with the SIP stack
        self.sip.shutdown(timeout_s=1.0)
        self.inbox.set_waker(None)
        if self.mqtt is not None:
            self.mqtt.stop()
            # Acknowledgements that arrived while stopping need not be sent again next time;
            # nothing else is acted on after the outputs went to their safe state.
            for event in self.inbox.drain():
                if isinstance(event, MqttPublished):
                    self.guard.run(event_name(event), partial(self.agent.handle, event))
            self.guard.run("loop.flush", self.agent.flush)
        if self.outbox is not None:
            self.outbox.close()
        self.inputs.close()
        self.outputs.close()
        logging.getLogger().removeHandler(self.agent.diagnostics.errors)
        log.info("stopped in %.2fs", time.monotonic() - started)

    def _status_extra(self) -> str:
        """STATUS= after the agent's own part: health, and what the SIP stack lacks."""
        parts = [self.health.status_suffix()]
        caps = self.agent.diagnostics.capabilities
        if caps is not None and not caps.deferred_responses:
            parts.append(f"pjproject {caps.pjproject}: 200 before storing")
        if caps is not None and (missing := len(caps.missing())):
            parts.append(f"lacks {missing} security fixes")
        if self.load.state.refusing:
            parts.append("SIP overloaded: refusing MESSAGE")
        return "; ".join(p for p in parts if p)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signals.install()

    def _wake_on_signals(self) -> None:
        # The signal thread wakes a loop waiting inside libHandleEvents at once.
        signals.set_waker(self.sip.wake)

    def _take_signals(self) -> None:
        """Act on the signals that arrived (owner thread, outside the handler)."""
        for signum in signals.take():
            name = signals.name_of(signum)
            what = signals.disposition(signum)
            if what == "stop":
                self._signal_stop = self._signal_stop or name
            elif what == "reload":
                self.inbox.put(ReloadRequested(name))
            elif what == "status":
                self.inbox.put(StatusLogRequested(name))
            elif (say := self._signal_log.say(name)).now:
                more = (
                    f" ({say.suppressed} more since the last such line)" if say.suppressed else ""
                )
                log.warning("%s received and ignored: it means nothing to the agent%s", name, more)


def run(config: Config) -> int:
    return Runner(config).run()
