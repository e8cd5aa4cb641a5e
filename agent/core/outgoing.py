"""MESSAGEs requested over MQTT: wait while SIP cannot send, retry transient failures, report.

Pure logic with an injected clock; the bridge feeds it SIP's readiness, the final statuses
and a tick once per loop turn. Every request ends in exactly one report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Final answers worth another try a little later: timeouts, overload, the callee between
# registrations. Anything else (404, 403, 488, ...) will not change by repeating.
TRANSIENT_CODES = frozenset({408, 480, 500, 502, 503, 504})
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)
# Requests waiting, being sent or waiting for a retry at once: more are refused at once. A
# broker client could otherwise pile up requests while SIP is down (each waits up to
# send_timeout) or keep pjsip busy with transactions for ever.
MAX_OPEN = 100


@dataclass
class Request:
    """One MESSAGE to send on behalf of `B/message/send`."""

    token: str
    to: str
    body: str
    content_type: str
    deadline: float  # give up waiting for SIP to be able to send at this time
    attempts: int = 0
    due: float = 0.0  # not sent again before this time
    sending: bool = False  # an attempt awaits its final status
    account: str | None = None  # the SIP account to send by (None: the first)


Send = Callable[[Request], None]  # raises ValueError with the reason if it cannot send at all
Report = Callable[[dict[str, object]], None]


class Outgoing:
    def __init__(
        self,
        send: Send,
        report: Report,
        *,
        timeout_s: float,
        retries: int,
        clock: Callable[[], float] = time.monotonic,
        max_open: int = MAX_OPEN,
    ) -> None:
        self._send = send
        self._report = report
        self._timeout_s = timeout_s
        self._retries = retries
        self._clock = clock
        self._max_open = max_open
        self._requests: dict[str, Request] = {}
        self.ready = False  # SIP can send now (registered, or direct mode)

    def submit(
        self,
        token: str,
        to: str,
        body: str,
        content_type: str = "text/plain",
        account: str | None = None,
    ) -> None:
        deadline = self._clock() + self._timeout_s
        request = Request(token, to, body, content_type, deadline, account=account)
        reason = None
        if token in self._requests:
            reason = f"id {token!r} is already being sent"
        elif len(self._requests) >= self._max_open:
            reason = f"{self._max_open} MESSAGEs are already waiting to be sent; try again later"
        if reason is not None:
            log.warning("MESSAGE %s to %s refused: %s", token, to, reason)
            self._report(_outcome(request, False, None, reason))
            return
        self._requests[token] = request
        if self.ready:
            self._attempt(request)
        else:
            log.info("MESSAGE %s to %s waits for SIP registration", token, to)

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        if ready:
            self.tick()

    def on_status(self, token: str, code: int, reason: str) -> bool:
        """A final SIP status for `token`; False if the token is not one of ours."""
        request = self._requests.get(token)
        if request is None or not request.sending:
            return False
        request.sending = False
        if 200 <= code < 300:
            del self._requests[token]
            self._report(_outcome(request, True, code, reason))
        elif code in TRANSIENT_CODES and request.attempts <= self._retries:
            delay = RETRY_DELAYS_S[min(request.attempts - 1, len(RETRY_DELAYS_S) - 1)]
            request.due = self._clock() + delay
            # A retry may wait for registration again, but not for ever.
            request.deadline = max(request.deadline, request.due + self._timeout_s)
            to = request.to
            log.info("MESSAGE %s to %s: %d %s; retry in %gs", token, to, code, reason, delay)
        else:
            self._fail(request, code, reason)
        return True

    def tick(self) -> None:
        """Send what is due, give up on what waited too long (call once per loop turn)."""
        now = self._clock()
        for request in list(self._requests.values()):
            if request.sending:
                continue
            if self.ready and now >= request.due:
                self._attempt(request)
            elif now >= request.deadline:
                self._fail(request, None, f"SIP not registered within {self._timeout_s:g} s")

    def abandon(self, reason: str) -> None:
        """Report every request still open as failed (the agent is stopping)."""
        for request in list(self._requests.values()):
            self._fail(request, None, reason)

    def _attempt(self, request: Request) -> None:
        request.attempts += 1
        request.sending = True
        try:
            self._send(request)
        except ValueError as err:
            request.sending = False
            self._fail(request, None, str(err))

    def _fail(self, request: Request, code: int | None, reason: str) -> None:
        self._requests.pop(request.token, None)
        log.warning("MESSAGE %s to %s failed: %s", request.token, request.to, reason)
        self._report(_outcome(request, False, code, reason))


def _outcome(request: Request, ok: bool, code: int | None, reason: str) -> dict[str, object]:
    return {
        "id": request.token,
        "to": request.to,
        "ok": ok,
        "code": code,
        "reason": reason,
        "attempts": request.attempts,
    }
