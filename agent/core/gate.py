"""The request gate's decisions: what happens to each SIP request before pjsua sees it. Pure.

agent.adapters.sip.gate puts this in front of pjsua (a pjsip module, see there). Every request gets
one verdict: pass it on to pjsua, drop it without a word, or answer it at once (statelessly)
with a status. What it holds the line on:

- routed mode takes requests only from the registrar/proxy (agent.core.trust), unless
  `sip.accept_from = "anyone"`;
- INVITEs never reach pjsua, which would open media sockets for each one: the gate answers
  them with `calls.reject_code` (after the call action, once per call, for allowed callers);
- a Via `maddr` (answers to an address of the sender's choosing, and a name to resolve) is
  dropped;
- SUBSCRIBE is admitted only for allowed watchers whose Contact (and Record-Route) are IP
  addresses, the Contact being the request's own source in direct mode (NOTIFYs go nowhere
  else, and no name is resolved), within the watcher bounds (agent.core.watchers);
- answers to strangers are bounded by one budget per second (agent.core.budget).
MESSAGE passes (how it is answered is pjsua's, and agent.core.agent's).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from agent.config.model import SipConfig
from agent.core.budget import TokenBucket
from agent.core.counters import Counters
from agent.core.lograte import LogThrottle
from agent.core.record import record
from agent.core.sipmsg import SipRequest, params_of, parse_request, uri_host
from agent.core.sipuri import InvalidSipUri, address_of_record
from agent.core.trust import Trust
from agent.core.watchers import Watchers

log = logging.getLogger(__name__)

# Counter names use these; anything else a stranger invents counts as "other".
_METHODS = frozenset(
    {"ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK"}
    | {"PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE"}
)
# How long an INVITE's answer is remembered, so that its retransmissions get the same answer
# without the call action running again (RFC 3261 Timer H: 64 * T1), and how many.
CALL_MEMORY_S = 32.0
CALL_MEMORY = 256


@record
class Verdict:
    """What the request gate does with a request: let it pass, drop it, or answer it."""

    action: str  # "pass" | "drop" | "answer"
    code: int = 0
    reason: str = ""


PASS = Verdict("pass")
DROP = Verdict("drop")


def answer(code: int, reason: str = "") -> Verdict:
    return Verdict("answer", code, reason)


@record
class Arrival:
    """One request as the gate sees it: its method, where it came from, its bytes."""

    method: str
    source: str  # IP address
    port: int
    raw: bytes
    transport: int = 0  # pjsip's transport it came on (an opaque id)


def _never_known(uri: str) -> bool:
    return False


def _reject_call(caller: str, source: str) -> int:
    return 603


def _refuse_watcher(from_uri: str) -> tuple[int, str]:
    return 403, "Forbidden"


class GatePolicy:
    """Decides; the hooks (who is known, what a call does, who may watch) come from the agent."""

    def __init__(
        self,
        config: SipConfig,
        counters: Counters,
        trust: Trust,
        strangers: TokenBucket,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.counters = counters
        self.trust = trust
        self.strangers = strangers  # answers to strangers, shared with the agent's replies
        self._clock = clock
        limits = config.limits
        self.subscribes = TokenBucket(limits.subscribe_per_s, clock=clock)
        self.watchers = Watchers(limits.watchers, limits.watchers_per_sender, clock)
        self._calls: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.only_proxy = config.routed and config.accept_from == "proxy"
        self._quiet = LogThrottle(log, clock=clock)
        # Set by the agent (agent.loop); until then strangers everywhere, every call refused.
        self.known: Callable[[str], bool] = _never_known
        self.on_call: Callable[[str, str], int] = _reject_call
        self.may_watch: Callable[[str], tuple[int, str]] = _refuse_watcher

    def decide(self, arrival: Arrival) -> Verdict:
        method = arrival.method
        name = method.lower() if method in _METHODS else "other"
        if self.only_proxy and not self.trust.contains(arrival.source):
            self.counters.bump("sip.request.not_from_proxy.dropped")
            self._quiet.warning(
                "untrusted",
                "%s from %s:%d dropped: routed mode takes requests only from the proxy "
                "(sip.accept_from)",
                method[:16],
                arrival.source,
                arrival.port,
            )
            return DROP
        if method == "ACK":
            return DROP  # no INVITE is ever accepted: an ACK never has anything to confirm
        if b"maddr" in arrival.raw.lower() and self._has_maddr(arrival.raw):
            self.counters.bump(f"sip.{name}.maddr.dropped")
            self._quiet.warning("maddr", "%s from %s dropped: Via maddr", method, arrival.source)
            return DROP
        if method == "MESSAGE":
            return PASS
        request = parse_request(arrival.raw)
        if request is None:
            self.counters.bump("sip.other.unreadable.dropped")
            return DROP
        if method == "INVITE":
            return self._invite(request, arrival)
        if method == "SUBSCRIBE":
            return self._subscribe(request, arrival)
        if request.to_tag is not None or self.trust.contains(arrival.source):
            return PASS  # inside a dialog (pjsua finds it or answers 481), or the proxy's
        return self._for_stranger(name, PASS)

    # -- INVITE ---------------------------------------------------------------------------

    def _invite(self, request: SipRequest, arrival: Arrival) -> Verdict:
        if request.to_tag is not None:
            return self._for_stranger("invite", answer(481))  # there are no dialogs
        key = request.key() or ""
        now = self._clock()
        self._forget_calls(now)
        remembered = self._calls.get(key)
        if remembered is not None:
            return answer(remembered[0])  # a retransmission: same answer, no second action
        caller = request.first("from") or ""
        if not self.known(caller) and not self.strangers.take():
            self.counters.bump("sip.invite.dropped")
            self._quiet.warning("invite", "INVITEs from strangers over the limit dropped")
            return DROP
        code = self.on_call(caller, f"{arrival.source}:{arrival.port}")
        self.counters.bump("sip.invite.refused")
        if key:
            self._calls[key] = (code, now)
            if len(self._calls) > CALL_MEMORY:
                self._calls.popitem(last=False)
        return answer(code)

    def _forget_calls(self, now: float) -> None:
        while self._calls:
            _key, (_code, at) = next(iter(self._calls.items()))
            if now - at < CALL_MEMORY_S:
                return
            self._calls.popitem(last=False)

    # -- SUBSCRIBE ------------------------------------------------------------------------

    def _subscribe(self, request: SipRequest, arrival: Arrival) -> Verdict:
        call_id = request.first("call-id") or ""
        if request.to_tag is not None:
            # A refresh or an unsubscribe: pjsua finds the dialog (or answers 481).
            self.watchers.refreshed(call_id, request.expires)
            return PASS
        if not self.subscribes.take():
            self.counters.bump("sip.subscribe.rate.dropped")
            self._quiet.warning("subscribe", "SUBSCRIBEs over sip.limits.subscribe_per_s dropped")
            return DROP
        event = (request.first("event") or "").split(";", 1)[0].strip().lower()
        if event != "presence":
            return self._for_stranger("subscribe", answer(489, "Bad Event"))
        sender = request.first("from") or ""
        code, reason = self.may_watch(sender)
        if code >= 300:
            self.counters.bump("sip.subscribe.refused")
            return self._for_stranger("subscribe", answer(code, reason))
        problem = self._where_notifies_go(request, arrival.source)
        if problem:
            self.counters.bump("sip.subscribe.contact.refused")
            log.warning("SUBSCRIBE from %s refused: %s", _aor(sender), problem)
            return answer(400, problem)
        if request.expires == 0:
            return PASS  # a one-time fetch: one NOTIFY, nothing stays
        refusal = self.watchers.admit(call_id, _aor(sender), request.expires)
        if refusal is not None:
            self.counters.bump("sip.subscribe.over_limit.refused")
            self._quiet.warning("watchers", "SUBSCRIBE from %s refused: %s", _aor(sender), refusal)
            return answer(403, refusal)
        return PASS

    def _where_notifies_go(self, request: SipRequest, source: str) -> str:
        """Why NOTIFYs for this SUBSCRIBE could go astray ("" if they cannot).

        pjsua sends them to the first Record-Route, else to the Contact, and looks up the
        local address toward that host on the owner thread: a name there would be resolved
        right away (and block), an address not the sender's would be a reflection.
        """
        routes = request.all("record-route")
        if routes and not self.config.routed:
            return "Record-Route is not taken in direct mode"
        for route in routes:
            if not _is_ip(uri_host(route)):
                return "Record-Route must name an IP address"
        contacts = request.all("contact")
        host = uri_host(contacts[0]) if contacts else None
        if not _is_ip(host):
            return "Contact must be an IP address"
        if not self.config.routed and _ip(host) != _ip(source):
            return "Contact must be the address the SUBSCRIBE came from"
        return ""

    # -- helpers ----------------------------------------------------------------------------

    def _for_stranger(self, name: str, verdict: Verdict) -> Verdict:
        """`verdict` if the budget for answering strangers allows one more, else a drop."""
        if self.strangers.take():
            return verdict
        self.counters.bump(f"sip.{name}.stranger_budget.dropped")
        self._quiet.warning(
            "budget", "requests from strangers over sip.limits.stranger_answers_per_s dropped"
        )
        return DROP

    @staticmethod
    def _has_maddr(raw: bytes) -> bool:
        request = parse_request(raw)
        if request is None:
            return True  # unreadable and mentions maddr: nothing worth answering
        vias = request.all("via")
        return not vias or "maddr" in params_of(vias[0])


def _aor(uri: str) -> str:
    try:
        return address_of_record(uri)
    except InvalidSipUri:
        return uri.strip()[:80]


def _ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_ip(host: str | None) -> bool:
    return _ip(host) is not None
