"""How much pjsip may hold under a flood: Timer J, and the bound past which MESSAGE is refused.

pjsip keeps every answered non-INVITE request's transaction for Timer J (32 s over UDP) to
absorb retransmissions; each holds about 12 KB (15 KB with deferred answers), so memory
grows with rate x Timer J: 2000 MESSAGE/s held 64 000 transactions and 400 MB (docs/pjsip.md).
The agent keeps pjsip's 32 s while traffic is normal, and shortens Timer J to `flood_j_ms`
once pjsip holds `high` transactions; back under `low`, 32 s again. pjsip has a single value
for Timer J, H and B/F (docs/pjsip.md, agent.adapters.sip.binding.CApi.set_timer_j), so during
a flood the agent's own requests also give up sooner; the rest of the time they keep the full
32 s.

A retransmission that arrives after its transaction is gone reaches the agent as a new
request; the dedupe keys (Call-ID, CSeq, From tag) of the outbox, or of agent.core.dedupe without
one, keep it from being relayed or obeyed twice.

With deferred answers (pjproject 2.16+) there is a hard bound too: past `refuse`
transactions a MESSAGE is answered 503 and not accepted (the sender tries again later),
until pjsip holds fewer than `resume`. With pjsua 2.15, which answers 200 before the agent
sees the request, nothing answered may be refused: there the bound is Timer J and the CPU
(one owner thread takes in a few thousand MESSAGEs a second; the kernel drops the rest).
"""

from __future__ import annotations

import logging
from typing import Protocol

from agent.core.record import record

log = logging.getLogger(__name__)


@record
class LoadPolicy:
    """Thresholds of the load policy (transactions held) and Timer J's two values."""

    normal_j_ms: int = 32_000  # RFC 3261: 64 x T1
    flood_j_ms: int = 500  # T1: a sender's first retransmission still finds its transaction
    high: int = 1_000  # transactions: from here, the flood Timer J
    low: int = 200  # ... and below this, the normal one again
    refuse: int = 4_000  # deferred answers: from here, MESSAGE gets 503
    resume: int = 3_000  # ... until pjsip holds fewer than this


DEFAULT_POLICY = LoadPolicy()


@record
class LoadState:
    """Timer J now, and whether MESSAGE is refused."""

    timer_j_ms: int
    refusing: bool


def next_state(transactions: int, state: LoadState, policy: LoadPolicy) -> LoadState:
    """Timer J and refusal for the transactions pjsip holds now (hysteresis both ways)."""
    timer_j = state.timer_j_ms
    if transactions >= policy.high:
        timer_j = policy.flood_j_ms
    elif transactions < policy.low:
        timer_j = policy.normal_j_ms
    refusing = state.refusing
    if transactions >= policy.refuse:
        refusing = True
    elif transactions < policy.resume:
        refusing = False
    return LoadState(timer_j, refusing)


class Transactions(Protocol):
    """pjsip's transaction layer (agent.adapters.sip.binding.CApi)."""

    def transactions(self) -> int: ...

    def set_timer_j(self, ms: int) -> None: ...


class SipLoad:
    """Applies the policy on the owner thread; `refusing` is read by agent.adapters.sip.answers."""

    def __init__(
        self,
        layer: Transactions | None,
        policy: LoadPolicy = DEFAULT_POLICY,
        *,
        can_refuse: bool = False,
    ) -> None:
        self._layer = layer
        self.policy = policy
        # Only deferred answers can refuse: pjsua 2.15 has answered 200 already.
        self.can_refuse = can_refuse
        self.state = LoadState(policy.normal_j_ms, refusing=False)
        self.transactions = 0
        self.peak = 0  # the most transactions seen at once, since start

    def tick(self) -> LoadState:
        """Read pjsip's transaction count and adjust; cheap (one locked counter read)."""
        if self._layer is None:
            return self.state
        count = self._layer.transactions()
        self.transactions = count
        self.peak = max(self.peak, count)
        new = next_state(count, self.state, self.policy)
        if not self.can_refuse:
            new = LoadState(new.timer_j_ms, refusing=False)
        if new.timer_j_ms != self.state.timer_j_ms:
            self._layer.set_timer_j(new.timer_j_ms)
            flood = new.timer_j_ms < self.state.timer_j_ms
            log.log(
                logging.WARNING if flood else logging.INFO,
                "SIP load: %d transactions held, Timer J now %d ms",
                count,
                new.timer_j_ms,
            )
        if new.refusing != self.state.refusing:
            log.warning(
                "SIP load: %d transactions held, %s",
                count,
                "MESSAGE refused with 503 until it drops" if new.refusing else "accepting again",
            )
        self.state = new
        return new

    def summary(self) -> str:
        """For `status`: what pjsip holds and how long answered requests linger."""
        j = self.state.timer_j_ms
        text = f"SIP transactions {self.transactions} (peak {self.peak}), Timer J {j / 1000:g} s"
        return text + ("; refusing MESSAGE (503)" if self.state.refusing else "")
