"""Delivery notices, both ways (IMDN, RFC 5438). Owner thread; no I/O of its own.

Out: a message that asked for them gets `delivered` once it is stored and `displayed` once
the agent has acted on it (a command carried out or refused). A notice goes where a reply
would (agent.core.messages.reply_target: the SIP From through the proxy, or the source address
in direct mode), never to an address the CPIM wrapper names, and to anyone nobody vouches
for only within the strangers' budget (`sip.limits.stranger_answers_per_s`), shared with
the replies and the request gate: a flood of requests for notices is not amplified.

In: `B/message/send` with `"notify": true` wraps the body in CPIM with a Message-ID and a
notification request; the notices that come back for it are matched by that Message-ID
*and* the sender it was sent to, and reported on `B/message/sent` as a delivery state.
"""

from __future__ import annotations

import base64
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from agent.core import cpim, imdn
from agent.core.access import identity_of
from agent.core.budget import TokenBucket
from agent.core.chat import Reading
from agent.core.counters import Counters
from agent.core.lograte import LogThrottle
from agent.core.messages import IncomingMessage, reply_target
from agent.core.ports import SipError
from agent.core.record import record

log = logging.getLogger(__name__)

# Our notified sends whose notices may still come; the oldest are forgotten past this.
MAX_TRACKED = 256

# (to, body, content_type, account); raises SipError when it cannot be sent
SendFn = Callable[[str, str, str, str | None], None]


@record
class Tracked:
    """A MESSAGE sent with `notify`, waiting for its delivery notices."""

    token: str  # the B/message/send id
    to: str  # the URI it was sent to
    identity: str  # its address of record: only a notice from there counts


class Receipts:
    def __init__(
        self,
        send: SendFn,
        counters: Counters,
        strangers: TokenBucket,
        *,
        routed: bool,
        authenticated: bool,
        own_uri: Callable[[str], str],
    ) -> None:
        self._send = send
        # Our identity on an account: a notice's CPIM From must be the SIP From it leaves
        # with (Linphone checks that the two agree).
        self._own_uri = own_uri
        self.counters = counters
        self.strangers = strangers
        self.routed = routed
        self.authenticated = authenticated
        self._tracked: OrderedDict[str, Tracked] = OrderedDict()
        self._quiet = LogThrottle(log)

    # -- notices we send ------------------------------------------------------------------

    def notify(
        self, msg: IncomingMessage, request: imdn.Request | None, status: str, known: bool
    ) -> None:
        """Tell the sender of `msg` it was `status` ("delivered" or "displayed"), if asked."""
        asked = request is not None and (
            request.delivered if status == "delivered" else request.displayed
        )
        if request is None or not asked:
            return
        if not (known and self.authenticated) and not self.strangers.take():
            # In direct mode a From proves nothing: everyone is within the strangers' budget.
            self.counters.bump("sip.notice.stranger_budget.dropped")
            self._quiet.warning(
                "budget", "delivery notices over sip.limits.stranger_answers_per_s dropped"
            )
            return
        target = reply_target(msg, routed=self.routed)
        now = _now()
        body = cpim.build(
            self._own_uri(msg.account),
            identity_of(msg.from_uri),
            imdn.CONTENT_TYPE,
            imdn.notice_xml(request.message_id, status, request.datetime or now),
            datetime=now,
            imdn=(("Message-ID", _new_id()),),
            content_headers=(("Content-Disposition", "notification"),),
        )
        try:
            self._send(target, body, cpim.CONTENT_TYPE, msg.account)
        except SipError as err:
            log.warning("%s notice for %s to %s not sent: %s", status, msg.id, target, err)
            return
        self.counters.bump(f"sip.notice.{status}.sent")
        log.info("told %s that message %s was %s", target, request.message_id, status)

    # -- notices about our own messages ---------------------------------------------------

    def wrap(self, token: str, to: str, sender: str, body: str, content_type: str) -> str:
        """`body` as a CPIM message asking `to` for delivery and display notices."""
        message_id = _new_id()
        self._tracked[message_id] = Tracked(token, to, identity_of(to))
        while len(self._tracked) > MAX_TRACKED:
            self._tracked.popitem(last=False)
            self.counters.bump("sip.notice.tracked.forgotten")
        return cpim.build(
            sender,
            identity_of(to),
            content_type,
            body,
            datetime=_now(),
            imdn=(
                ("Message-ID", message_id),
                ("Disposition-Notification", "positive-delivery, negative-delivery, display"),
            ),
        )

    def on_signal(self, reading: Reading) -> dict[str, object] | None:
        """A notice or an is-composing indication: the `B/message/sent` record it makes,
        or None. Neither is a message: never relayed as one, never answered."""
        if reading.kind == "composing":
            self.counters.bump("sip.composing.ignored")
            return None
        if reading.problem:
            self.counters.bump("sip.notice.unreadable.dropped")
            log.info("%s from %s: dropped", reading.problem, reading.message.from_uri)
            return None
        return self._on_notice(reading.message, reading.notice)

    def _on_notice(
        self, msg: IncomingMessage, notice: imdn.Notice | None
    ) -> dict[str, object] | None:
        tracked = self._tracked.get(notice.message_id) if notice is not None else None
        if tracked is None or notice is None:
            self.counters.bump("sip.notice.unknown.dropped")
            log.info("delivery notice from %s about no message of ours: dropped", msg.from_uri)
            return None
        if identity_of(msg.from_uri) != tracked.identity:
            # Someone else claiming our message was read: a forgery, or a forwarder's.
            self.counters.bump("sip.notice.foreign.dropped")
            log.warning(
                "delivery notice about %s from %s, not from %s: dropped",
                tracked.token, msg.from_uri, tracked.identity,
            )  # fmt: skip
            return None
        if notice.status in ("displayed", "failed", "forbidden", "error"):
            del self._tracked[notice.message_id]  # nothing more will come that matters
        self.counters.bump(f"sip.notice.{notice.status}.received")
        return {"id": tracked.token, "to": tracked.to, "delivery": notice.status}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id() -> str:
    # secrets.token_urlsafe(12), without `secrets`: it imports hmac, which loads the
    # system's libcrypto for good (agent.lean).
    return base64.urlsafe_b64encode(os.urandom(12)).rstrip(b"=").decode("ascii")
