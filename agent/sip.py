"""The pjsua2 adapter. Everything in this module runs on the owner thread, except `wake`.

pjsua2 calls back into Python from inside `libHandleEvents`, so the listener's
methods also run on the owner thread and may call back into this adapter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import ClassVar, Protocol

import pjsua2 as pj

from agent import sipnet
from agent.answers import Answers
from agent.binding import CApi, defers_answers
from agent.config import SipConfig
from agent.counters import Counters
from agent.messages import IncomingMessage, request_key
from agent.registration import RegState, reg_state_of
from agent.sip_calls import IncomingCalls
from agent.sip_send import MessageSender

log = logging.getLogger(__name__)
pjlog = logging.getLogger("agent.pjsip")

_TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}
# Expired timers run per poll (pjsip: 10, against up to 50 datagrams taken in): enough that
# answered transactions expire as fast as a flood creates them (agent.binding).
TIMERS_PER_POLL = 1000
# A SIP keep-alive: pjsip drops it silently, and it wakes `libHandleEvents` at once.
_WAKE_DATAGRAM = b"\r\n\r\n"
# pjsua2 reports no PUBLISH outcome. When pjsua gives its publication up (any failure but 412)
# it logs this line (agent.sip_presence acts on it).
_PUBLISH_FAILED = "publication (PUBLISH) failed"


class SipListener(Protocol):
    def on_registration(self, state: RegState) -> None: ...

    def on_message(self, msg: IncomingMessage) -> None: ...

    def on_message_status(self, token: str | None, to: str, code: int, reason: str) -> None: ...

    def on_incoming_call(self, caller: str, source: str) -> int: ...


class _LogWriter(pj.LogWriter):
    _LEVELS: ClassVar[dict[int, int]] = {
        0: logging.ERROR,
        1: logging.ERROR,
        2: logging.WARNING,
        3: logging.INFO,
    }

    def __init__(self) -> None:
        super().__init__()
        self.publish_failed = False

    def write(self, entry: pj.LogEntry) -> None:
        msg = entry.msg.rstrip()
        pjlog.log(self._LEVELS.get(entry.level, logging.DEBUG), "%s", msg)
        if _PUBLISH_FAILED in msg:
            self.publish_failed = True  # acted on by SipStack.poll, outside pjsua's locks


class _Endpoint(pj.Endpoint):
    def __init__(self, stack: SipStack) -> None:
        super().__init__()
        self._stack = stack

    def onTransportState(self, prm: pj.OnTransportStateParam) -> None:
        self._stack._on_transport_state(prm)


class _Account(pj.Account):
    def __init__(self, stack: SipStack) -> None:
        super().__init__()
        self._stack = stack

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self._stack._on_reg_state(prm.code, prm.reason, prm.expiration, prm.rdata.wholeMsg)

    def onInstantMessage(self, prm: pj.OnInstantMessageParam) -> None:
        self._stack._on_instant_message(prm)

    def onInstantMessageStatus(self, prm: pj.OnInstantMessageStatusParam) -> None:
        self._stack._on_message_status(prm.toUri, prm.msgBody, prm.code, prm.reason)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._stack.calls.reject(self, prm, self._stack.listener.on_incoming_call)

    def onIncomingSubscribe(self, prm: pj.OnIncomingSubscribeParam) -> None:
        self._stack._on_incoming_subscribe(prm)


class SipStack:
    """One pjsua2 endpoint with one account, polled by the owner loop."""

    def __init__(self, config: SipConfig) -> None:
        self.config = config
        self.listener: SipListener = _NoListener()
        self.routed = bool(config.registrar or config.proxy)
        self._ep: pj.Endpoint | None = None
        self._account: _Account | None = None
        self._log_writer = _LogWriter()
        self._sender = MessageSender()
        self.messages_received = 0  # for agent.heap: when traffic stops, memory can go back
        self.counters = Counters()  # the run's shared counters replace this (agent.loop)
        # Who answers a MESSAGE, and when (agent.answers): pjsua at once, or we once stored.
        self.answers = Answers(pj, defers_answers(pj), lambda name: self.counters.bump(name))
        self.c_api: CApi | None = None  # pjsip's C functions (agent.binding), after start
        self.calls = IncomingCalls()
        self._wake_sock: socket.socket | None = None
        self._unregistering = False
        self._recovery: sipnet.Recovery | None = None
        self.version = ""
        self.local_address = ""
        # Who may SUBSCRIBE to our presence: from-URI -> (SIP code, reason). Until someone
        # decides (agent.sip_presence), nobody may: pjsua itself would accept everyone.
        self.subscribe_policy: Callable[[str], tuple[int, str]] = _refuse_subscribe
        # Called after each poll, outside pjsua's callbacks (agent.sip_presence's timers).
        self.poll_hooks: list[Callable[[], None]] = []

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> None:
        ep = _Endpoint(self)
        with _stdout_silenced():
            # pjlib prints a banner to stdout before libInit installs our log writer.
            ep.libCreate()
        self._ep = ep
        self.version = ep.libVersion().full
        cfg = pj.EpConfig()
        # The architecture rule: pjsua2 lives on this thread and nowhere else.
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = self.config.user_agent
        # No RTP here: without its own ioqueue pjmedia starts no worker thread, which
        # would otherwise wake every 10 ms and cost 0.3 % of a core while idle.
        cfg.medConfig.hasIoqueue = False
        cfg.medConfig.threadCnt = 0
        cfg.logConfig.writer = self._log_writer
        # pjsua2 hands the writer what passes consoleLevel; pjsip's level 4+ is a firehose.
        cfg.logConfig.level = cfg.logConfig.consoleLevel = (
            4 if pjlog.isEnabledFor(logging.DEBUG) else 2
        )
        cfg.logConfig.decor = 0
        sipnet.apply_stun(cfg, self.config)
        ep.libInit(cfg)
        self.c_api = CApi.load()
        if self.c_api is not None:
            self.c_api.set_timers_per_poll(TIMERS_PER_POLL)
        tid = self._create_transport()
        self._create_wake_transport()
        ep.libStart()
        ep.audDevManager().setNoDev()  # a messaging agent: never open a sound device
        self._account = _Account(self)
        if self.config.registrar:
            self._recovery = sipnet.Recovery(self.config, self._report)
            self._recovery.keeper.started()  # create() sends the first REGISTER
        self._account.create(self._account_config(tid))
        self.answers.account = self._account
        log.info(
            "SIP account %s on %s %s (pjproject %s)",
            self.config.uri,
            self.config.transport,
            self.local_address,
            self.version,
        )

    def _create_transport(self) -> int:
        assert self._ep is not None
        tc = sipnet.transport_config(self.config)
        tid = self._ep.transportCreate(_TRANSPORTS[self.config.transport], tc)
        self.local_address = self._ep.transportGetInfo(tid).localName
        return tid

    def _create_wake_transport(self) -> None:
        assert self._ep is not None
        tc = pj.TransportConfig()
        tc.port = 0
        tc.boundAddress = "127.0.0.1"
        tid = self._ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        host, port = self._ep.transportGetInfo(tid).localName.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        self._wake_sock = sock

    def _account_config(self, tid: int) -> pj.AccountConfig:
        ac = sipnet.account_config(self.config, tid)
        self.answers.configure(ac.sipConfig)  # 2.16+: no 200 before the agent has it
        return ac

    @property
    def account(self) -> pj.Account | None:
        """The pjsua2 account, for the presence adapter (owner thread only)."""
        return self._account

    def shutdown(self, timeout_s: float = 1.0) -> None:
        """Unregister (bounded wait), then destroy pjsua2 in the order it needs."""
        if self._ep is None:
            return
        account = self._account
        self._recovery = None  # no retries while we leave
        if account is not None and self.config.registrar and account.getInfo().regIsActive:
            self._unregistering = True
            try:
                account.setRegistration(False)
            except pj.Error as err:
                log.warning("unregister failed: %s", err.info())
            else:
                deadline = time.monotonic() + timeout_s
                while self._unregistering and time.monotonic() < deadline:
                    self._ep.libHandleEvents(20)
        self._sender.close()
        self.calls.hang_up_all()
        self.answers.close()  # a DeferredResponse alive after libDestroy aborts the process
        if account is not None:
            account.shutdown()
            self._account = None
        # NO_RX_MSG: we already waited for what we care about; pjsua would sleep 1 s more.
        self._ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        self._ep = None
        if self._wake_sock is not None:
            self._wake_sock.close()
            self._wake_sock = None

    # -- the loop ---------------------------------------------------------------------

    def poll(self, timeout_ms: int) -> None:
        assert self._ep is not None
        self.calls.sweep()
        self._ep.libHandleEvents(max(0, timeout_ms))
        for hook in self.poll_hooks:
            hook()
        if self._recovery is not None:
            self._recovery.tick(time.monotonic(), self._account)

    def take_publish_failure(self) -> bool:
        """True once after pjsua logged that it gave its publication up."""
        failed, self._log_writer.publish_failed = self._log_writer.publish_failed, False
        return failed

    def register_again(self) -> None:
        """Send a REGISTER now (a successful one also restarts pjsua's publication)."""
        if self._account is None or self._unregistering or not self.config.registrar:
            return
        try:
            self._account.setRegistration(True)
        except pj.Error as err:
            log.warning("REGISTER again failed to start: %s", err.info())

    def wake(self) -> None:
        """Make a running `poll` return soon. Safe from any thread."""
        sock = self._wake_sock
        if sock is None:
            return
        # A full socket buffer means wake-ups are already queued; nothing is lost.
        with contextlib.suppress(OSError):
            sock.send(_WAKE_DATAGRAM)

    def wake_fd(self) -> int:
        """A non-blocking fd whose writes wake `poll` (for signal.set_wakeup_fd)."""
        assert self._wake_sock is not None
        return self._wake_sock.fileno()

    # -- answering and sending --------------------------------------------------------

    @property
    def defers_answers(self) -> bool:
        """True when the agent answers MESSAGE itself (2.16+); else pjsua answered 200."""
        return self.answers.deferred

    def answer(self, msg: IncomingMessage, code: int, reason: str) -> None:
        """Answer a MESSAGE being handled now (a no-op where pjsua answered already)."""
        self.answers.answer(msg.id, code, reason)

    def send_message(
        self, to: str, body: str, content_type: str = "text/plain", token: str | None = None
    ) -> None:
        """Send a MESSAGE; its outcome comes back through `on_message_status(token, …)`."""
        assert self._account is not None
        self._sender.send(self._account, to, body, content_type, token)

    # -- callbacks (owner thread, inside poll) ------------------------------------------

    def _on_reg_state(self, code: int, reason: str, expires: int, response: str) -> None:
        state = reg_state_of(code, reason, expires, unregistering=self._unregistering)
        if self._unregistering and state.state != "failed":
            self._unregistering = False
        if self._recovery is not None:
            state = self._recovery.on_result(state, response)
        self.listener.on_registration(state)

    def _on_transport_state(self, prm: pj.OnTransportStateParam) -> None:
        refusal = sipnet.transport_trouble(prm)
        if self._recovery is None or prm.state != pj.PJSIP_TP_STATE_DISCONNECTED:
            return
        if refusal:
            self._recovery.tls_refusal = refusal
        elif self.config.transport != "udp":
            self._recovery.connection_lost(time.monotonic())

    def _report(self, state: RegState) -> None:
        self.listener.on_registration(state)

    def _on_instant_message(self, prm: pj.OnInstantMessageParam) -> None:
        self.messages_received += 1
        msg = IncomingMessage.new(
            from_uri=prm.fromUri,
            to_uri=prm.toUri,
            contact=prm.contactUri,
            body=_text(prm.msgBody),
            content_type=prm.contentType,
            source=prm.rdata.srcAddress,
            transport=self.config.transport,
            request_key=request_key(prm.rdata.wholeMsg),
        )
        with self.answers.held(msg.id, prm) as admitted:
            if admitted:  # else refused with 503: pjsip holds too much (agent.sipload)
                self.listener.on_message(msg)

    def _on_incoming_subscribe(self, prm: pj.OnIncomingSubscribeParam) -> None:
        code, reason = self.subscribe_policy(prm.fromUri)
        prm.code = code
        prm.reason = reason

    def _on_message_status(self, to: str, body: str, code: int, reason: str) -> None:
        # 1xx are provisional; only a final answer settles the send.
        if code >= 200:
            self.listener.on_message_status(self._sender.settle(to, body), to, code, reason)


class _NoListener:
    """Until the agent is attached, callbacks are logged and dropped."""

    def on_registration(self, state: RegState) -> None:
        log.debug("registration %s before the agent was attached", state.state)

    def on_message(self, msg: IncomingMessage) -> None:
        log.warning("MESSAGE from %s arrived before the agent was attached", msg.from_uri)

    def on_message_status(self, token: str | None, to: str, code: int, reason: str) -> None:
        log.debug("MESSAGE status %d before the agent was attached", code)

    def on_incoming_call(self, caller: str, source: str) -> int:
        log.warning("call from %s arrived before the agent was attached", caller)
        return 603


_SURROGATES = re.compile("[\ud800-\udfff]")


def _text(text: str) -> str:
    """pjsua2's text as clean str: bytes that were not UTF-8 become U+FFFD.

    SWIG hands them over as lone surrogates, which cannot be encoded again: JSON for MQTT,
    sqlite and the journal would all fail on them.
    """
    return _SURROGATES.sub("\ufffd", text)


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
