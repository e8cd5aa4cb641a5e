"""The pjsua2 adapter. Everything in this module runs on the owner thread, except `wake`.

pjsua2 calls back into Python from inside `libHandleEvents`, so the listener's
methods also run on the owner thread and may call back into this adapter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Protocol

import pjsua2 as pj

from agent.adapters.sip import net as sipnet
from agent.adapters.sip.accounts import Slot, Slots
from agent.adapters.sip.answers import Answers
from agent.adapters.sip.binding import CApi, defers_answers, skip_openssl_error_texts
from agent.adapters.sip.guard import failed, guarded
from agent.adapters.sip.incoming import incoming
from agent.adapters.sip.logs import PjLogWriter, pjlog
from agent.adapters.sip.perimeter import Perimeter
from agent.adapters.sip.settings import account_config, endpoint_config
from agent.adapters.sip.wake import Waker
from agent.config.model import SipConfig
from agent.core.counters import Counters
from agent.core.messages import IncomingMessage, new_id
from agent.core.registration import RegState, reg_state_of
from agent.core.siptext import clean

log = logging.getLogger(__name__)

# Expired timers run per poll (pjsip: 10, against up to 50 datagrams taken in): enough that
# answered transactions expire as fast as a flood creates them (agent.adapters.sip.binding).
TIMERS_PER_POLL = 1000


class SipListener(Protocol):
    def on_registration(self, state: RegState, account: str | None = None) -> None: ...

    def on_message(self, msg: IncomingMessage) -> None: ...

    def on_message_status(self, token: str | None, to: str, code: int, reason: str) -> None: ...


class _Endpoint(pj.Endpoint):
    def __init__(self, stack: SipStack) -> None:
        super().__init__()
        self._stack = stack

    @property
    def counters(self) -> Counters:
        return self._stack.counters

    @guarded("on_transport_state")
    def onTransportState(self, prm: pj.OnTransportStateParam) -> None:
        self._stack._on_transport_state(prm)


class _Account(pj.Account):
    def __init__(self, stack: SipStack, slot: Slot) -> None:
        super().__init__()
        self._stack = stack
        self._slot = slot  # which of the accounts ([[sip.accounts]]) pjsua calls back

    @property
    def counters(self) -> Counters:
        return self._stack.counters

    @guarded("on_reg_state")
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        rdata = prm.rdata
        self._stack._on_reg_state(
            self._slot,
            prm.code,
            clean(prm.reason),
            prm.expiration,
            clean(rdata.wholeMsg),
            clean(rdata.srcAddress),
        )

    @guarded("on_instant_message")
    def onInstantMessage(self, prm: pj.OnInstantMessageParam) -> None:
        self._stack._on_instant_message(prm, self._slot)

    @guarded("on_instant_message_status")
    def onInstantMessageStatus(self, prm: pj.OnInstantMessageStatusParam) -> None:
        self._stack._on_message_status(
            self._slot, clean(prm.toUri), clean(prm.msgBody), prm.code, clean(prm.reason)
        )

    @guarded("on_incoming_subscribe")
    def onIncomingSubscribe(self, prm: pj.OnIncomingSubscribeParam) -> None:
        prm.code = 500  # should the decision fail, the watcher is refused, not let in
        prm.code, prm.reason = self._stack._on_incoming_subscribe(clean(prm.fromUri))


class SipStack:
    """One pjsua2 endpoint with its accounts (`config` first), polled by the owner loop."""

    def __init__(
        self,
        config: SipConfig,
        counters: Counters | None = None,
        more_accounts: tuple[SipConfig, ...] = (),
        *,
        uses_tls: bool = True,
    ) -> None:
        self.config = config
        # Whether anything in the process uses TLS (Config.uses_tls): OpenSSL's error texts
        # are skipped, half a megabyte at idle, only when nothing does (.binding).
        self.uses_tls = uses_tls
        self.slots = Slots((config, *more_accounts))
        self.listener: SipListener = _NoListener()
        self.routed = config.routed
        # What was refused, dropped or limited: the run's shared counters (agent.loop).
        self.counters = counters if counters is not None else Counters()
        self._ep: pj.Endpoint | None = None
        self._log_writer = PjLogWriter(self.counters)
        # For agent.adapters.heap: when traffic stops, memory can go back.
        self.messages_received = 0
        # Who answers a MESSAGE, and when (agent.adapters.sip.answers): pjsua at once, or we,
        # once it is stored.
        self.answers = Answers(pj, defers_answers(pj), self.counters.bump)
        # pjsip's C functions (agent.adapters.sip.binding), once started.
        self.c_api: CApi | None = None
        self._waker = Waker()  # other threads' events wake the loop through it
        self.version = ""
        self.local_address = ""
        # Who may SUBSCRIBE to our presence: from-URI -> (SIP code, reason). Until someone
        # decides (agent.adapters.sip.presence), nobody may: pjsua itself would accept everyone.
        self.subscribe_policy: Callable[[str], tuple[int, str]] = _refuse_subscribe
        # Called after each poll, outside pjsua's callbacks (agent.adapters.sip.presence's timers),
        # and when they next have something to do (time.monotonic(); None: nothing).
        self.poll_hooks: list[Callable[[], None]] = []
        self.deadlines: list[Callable[[], float | None]] = []
        # Every request is judged before pjsua sees it (agent.core.gate), routed mode trusts
        # only the proxy's addresses (agent.core.trust).
        self.perimeter = Perimeter(config, self.counters, self.wake, more_accounts)
        self.policy = self.perimeter.policy

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> None:
        if not self.uses_tls and (library := skip_openssl_error_texts()):
            log.debug("no TLS in use: OpenSSL's error texts are not loaded (%s)", library)
        ep = _Endpoint(self)
        with _stdout_silenced():
            # pjlib prints a banner to stdout before libInit installs our log writer.
            ep.libCreate()
        self._ep = ep
        self.version = ep.libVersion().full
        ep.libInit(
            endpoint_config(self.config, self._log_writer, pjlog.isEnabledFor(logging.DEBUG))
        )
        self.c_api = CApi.load()
        if self.c_api is not None:
            self.c_api.set_timers_per_poll(TIMERS_PER_POLL)
        for slot in self.slots.all:
            slot.create_transport(ep)
        self.local_address = self.slots.first.local_address
        wake_address = self._waker.create(ep)
        ep.libStart()
        ep.audDevManager().setNoDev()  # a messaging agent: never open a sound device
        for slot in self.slots.all:
            if slot.config.registrar:  # before the perimeter: the SRV domain is looked up here
                report = partial(self._report, slot)
                slot.recovery = sipnet.Recovery.create(slot.config, report, self.perimeter)
        guarded = self.slots.guarded_tcp() or self.slots.first
        self.perimeter.start(wake_address, ep.libHandleEvents, guarded.port)
        for slot in self.slots.all:
            self._create_account(slot)

    def _create_account(self, slot: Slot) -> None:
        slot.account = _Account(self, slot)
        recovery = slot.recovery
        waits = recovery is not None and recovery.waits_for_dns  # the first REGISTER waits
        slot.account.create(self._account_config(slot, register=not waits))
        if recovery is not None:
            reroute = partial(self._account_config, slot)
            recovery.begin(time.monotonic(), slot.account, reroute)
        log.info(
            "SIP account %s (%s) on %s %s (pjproject %s)",
            slot.config.uri,
            slot.name,
            slot.config.transport,
            slot.local_address,
            self.version,
        )

    def _account_config(
        self, slot: Slot, route: str | None = None, *, register: bool = True
    ) -> pj.AccountConfig:
        """The account's config (through `route`: an SRV target, agent.adapters.sip.net)."""
        ac = account_config(slot.config, slot.tid, route=route, register=register)
        self.answers.configure(ac.sipConfig)  # 2.16+: no 200 before the agent has it
        return ac

    @property
    def account(self) -> pj.Account | None:
        """The first pjsua2 account, for the presence adapter (owner thread only)."""
        return self.slots.first.account

    def shutdown(self, timeout_s: float = 1.0) -> None:
        """Unregister (bounded wait), then destroy pjsua2 in the order it needs."""
        if self._ep is None:
            return
        for slot in self.slots.all:
            if slot.recovery is not None:
                slot.recovery.close()  # before libDestroy: its DNS query lives in pjsua's pool
            slot.recovery = None  # no retries while we leave
            account = slot.account
            if account is not None and slot.config.registrar and account.getInfo().regIsActive:
                slot.unregistering = True
                try:
                    account.setRegistration(False)
                except pj.Error as err:
                    slot.unregistering = False
                    log.warning("unregister of %s failed: %s", slot.name, err.info())
        deadline = time.monotonic() + timeout_s
        while any(s.unregistering for s in self.slots.all) and time.monotonic() < deadline:
            self._ep.libHandleEvents(20)
        self.answers.close()  # a DeferredResponse alive after libDestroy aborts the process
        for slot in self.slots.all:
            slot.sender.close()
            if slot.account is not None:
                slot.account.shutdown()
                slot.account = None
        # NO_RX_MSG: we already waited for what we care about; pjsua would sleep 1 s more.
        self.perimeter.close()
        self._ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        self._ep = None
        self._waker.close()

    # -- the loop ---------------------------------------------------------------------

    def poll(self, timeout_ms: int) -> None:
        assert self._ep is not None
        now = time.monotonic()
        for due in filter(None, (deadline() for deadline in self.deadlines)):
            timeout_ms = min(timeout_ms, int((due - now) * 1000) + 1)
        self._ep.libHandleEvents(max(0, timeout_ms))
        try:
            self.perimeter.after_poll(self._shutdown_transport)
        except Exception:
            failed(self.counters, "perimeter")  # logged and counted: the loop goes on
        for hook in self.poll_hooks:
            try:
                hook()
            except Exception:
                failed(self.counters, "poll_hook")
        for slot in self.slots.all:
            if slot.recovery is None:
                continue
            try:
                slot.recovery.tick(time.monotonic(), slot.account)
            except Exception:
                failed(self.counters, "recovery")

    def _shutdown_transport(self, handle: object) -> None:
        if self.c_api is not None:
            self.c_api.shutdown_transport(int(handle))  # type: ignore[call-overload]
        elif self._ep is not None:
            self._ep.transportShutdown(handle)

    def take_publish_failure(self) -> bool:
        """True once after pjsua logged that it gave its publication up."""
        failed, self._log_writer.publish_failed = self._log_writer.publish_failed, False
        return failed

    def register_again(self) -> None:
        """Send a REGISTER now (a successful one also restarts pjsua's publication)."""
        first = self.slots.first
        if first.account is None or first.unregistering or not self.config.registrar:
            return
        try:
            first.account.setRegistration(True)
        except pj.Error as err:
            log.warning("REGISTER again failed to start: %s", err.info())

    def wake(self) -> None:
        """Make a running `poll` return soon. Safe from any thread (agent.adapters.sip.wake)."""
        self._waker.wake()

    # -- answering and sending --------------------------------------------------------

    @property
    def defers_answers(self) -> bool:
        """True when the agent answers MESSAGE itself (2.16+); else pjsua answered 200."""
        return self.answers.deferred

    def answer(self, msg: IncomingMessage, code: int, reason: str) -> None:
        """Answer a MESSAGE being handled now (a no-op where pjsua answered already)."""
        self.answers.answer(msg.id, code, reason)

    def send_message(
        self,
        to: str,
        body: str,
        content_type: str = "text/plain",
        token: str | None = None,
        account: str | None = None,
    ) -> None:
        """Send a MESSAGE by `account` (None: the first); its outcome comes back through
        `on_message_status(token, …)`. SipError when it cannot be sent at all."""
        slot = self.slots.get(account)
        assert slot.account is not None
        slot.sender.send(slot.account, to, body, content_type, token)

    # -- callbacks (owner thread, inside poll) ------------------------------------------

    def _on_reg_state(
        self, slot: Slot, code: int, reason: str, expires: int, response: str, source: str
    ) -> None:
        state = reg_state_of(code, reason, expires, unregistering=slot.unregistering)
        if slot.unregistering and state.state != "failed":
            slot.unregistering = False
        if code // 100 == 2 and source:
            self.perimeter.registered(source)  # who answered is the proxy: no lookup needed
        if slot.recovery is not None:
            state = slot.recovery.on_result(state, response)
        self.listener.on_registration(state, slot.name)

    def _on_transport_state(self, prm: pj.OnTransportStateParam) -> None:
        if self.perimeter.on_transport_state(prm):
            return  # someone's connection to us: counted by the guard, not ours to recover
        refusal = sipnet.transport_trouble(prm)
        if prm.state != pj.PJSIP_TP_STATE_DISCONNECTED:
            return
        # pjsua2 does not say whose connection it was: every TCP/TLS account checks its own.
        for slot in self.slots.all:
            if slot.recovery is None or slot.config.transport == "udp":
                continue
            if refusal and slot.config.transport == "tls":
                slot.recovery.tls_refusal = refusal
            elif not refusal:
                slot.recovery.connection_lost(time.monotonic())

    def _report(self, slot: Slot, state: RegState) -> None:
        self.listener.on_registration(state, slot.name)

    def _on_instant_message(self, prm: pj.OnInstantMessageParam, slot: Slot) -> None:
        self.messages_received += 1
        key = new_id()
        # Held from the first line: whatever happens below, the request gets one answer.
        with self.answers.held(key, prm, slot.account) as admitted:
            if admitted:  # else refused with 503: pjsip holds too much (agent.core.sipload)
                self.listener.on_message(incoming(prm, slot, key))

    def _on_incoming_subscribe(self, from_uri: str) -> tuple[int, str]:
        if self.perimeter.gate_on:
            return 200, "OK"  # the gate let it through: allowed, within the bounds
        return self.subscribe_policy(from_uri)

    def _on_message_status(self, slot: Slot, to: str, body: str, code: int, reason: str) -> None:
        # 1xx are provisional; only a final answer settles the send.
        if code >= 200:
            self.listener.on_message_status(slot.sender.settle(to, body), to, code, reason)


class _NoListener:
    """Until the agent is attached, callbacks are logged and dropped."""

    def on_registration(self, state: RegState, account: str | None = None) -> None:
        log.debug("registration %s of %s before the agent was attached", state.state, account)

    def on_message(self, msg: IncomingMessage) -> None:
        log.warning("MESSAGE from %s arrived before the agent was attached", msg.from_uri)

    def on_message_status(self, token: str | None, to: str, code: int, reason: str) -> None:
        log.debug("MESSAGE status %d before the agent was attached", code)


def _refuse_subscribe(from_uri: str) -> tuple[int, str]:
    log.warning("SUBSCRIBE from %s refused: presence is not being served", from_uri)
    return 489, "Bad Event"


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
