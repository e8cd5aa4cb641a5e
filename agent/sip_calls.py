"""Incoming calls in pjsua2: each one is answered at once with a final status (a rejection).

Owner thread only, like the rest of the SIP adapter. pjsua2 calls back a `Call` for as long
as the call exists, so each is referenced until it is reported disconnected, and released
only at the next poll: never inside pjsua2's own callback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import pjsua2 as pj

log = logging.getLogger(__name__)

# (caller URI, source "host:port") -> the SIP status to reject the call with
Decide = Callable[[str, str], int]


class _Call(pj.Call):
    def __init__(self, calls: IncomingCalls, account: pj.Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self._calls = calls
        self.call_id = call_id

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._calls.ended(self)


class IncomingCalls:
    def __init__(self) -> None:
        self._live: dict[int, _Call] = {}
        self._ended: list[_Call] = []

    def reject(self, account: pj.Account, prm: pj.OnIncomingCallParam, decide: Decide) -> None:
        """Answer the new call `prm.callId` with the status `decide` gives."""
        call = _Call(self, account, prm.callId)
        self._live[prm.callId] = call
        caller = call.getInfo().remoteUri
        op = pj.CallOpParam()
        op.statusCode = decide(caller, prm.rdata.srcAddress)
        try:
            # A call not yet answered is answered with this final status.
            call.hangup(op)
        except pj.Error as err:
            log.warning("rejecting the call from %s failed: %s", caller, err.info())
            self.ended(call)

    def ended(self, call: _Call) -> None:
        if self._live.pop(call.call_id, None) is not None:
            self._ended.append(call)

    def sweep(self) -> None:
        """Release the calls pjsua2 has finished with (call before polling)."""
        self._ended.clear()

    def hang_up_all(self) -> None:
        for call in list(self._live.values()):
            with contextlib.suppress(pj.Error):
                call.hangup(pj.CallOpParam())
        self._live.clear()
        self._ended.clear()
