"""Outgoing SIP MESSAGEs: a small cache of pjsua2 Buddy objects, and matching each final
status back to the token of the request it answers. Owner thread only."""

from __future__ import annotations

from collections import OrderedDict, deque

import pjsua2 as pj

from agent.core.ports import SipError
from agent.core.siptext import clean
from agent.core.sipuri import InvalidSipUri, parse_sip_uri

# Recreating a Buddy for every reply costs more than keeping a few.
_BUDDY_CACHE = 32


class MessageSender:
    """Sends MESSAGEs through an account; `settle` turns a final status into its token."""

    def __init__(self) -> None:
        self._buddies: OrderedDict[str, pj.Buddy] = OrderedDict()
        self._pending: dict[tuple[str, str], deque[str | None]] = {}

    def send(
        self, account: pj.Account, to: str, body: str, content_type: str, token: str | None
    ) -> None:
        try:
            uri = str(parse_sip_uri(to))
        except InvalidSipUri as err:
            raise SipError(str(err)) from None
        buddy = self._buddy(account, uri)
        prm = pj.SendInstantMessageParam()
        prm.content = body
        prm.contentType = content_type
        try:
            buddy.sendInstantMessage(prm)
        except pj.Error as err:
            raise SipError(f"cannot send to {uri}: {err.reason}") from None
        # pjsua2 cannot carry a Python token through userData; correlate by (uri, body),
        # as the status callback will show them: cleaned (agent.core.siptext; a NUL in a body).
        self._pending.setdefault((clean(uri), clean(body)), deque()).append(token)

    def settle(self, to: str, body: str) -> str | None:
        """The token of the oldest request to `to` with `body` still waiting for an answer."""
        key = (to, body)
        queue = self._pending.get(key)
        if not queue:
            return None
        token = queue.popleft()
        if not queue:
            del self._pending[key]
        return token

    def close(self) -> None:
        """Drop every Buddy (before the account and the endpoint go)."""
        self._buddies.clear()

    def _buddy(self, account: pj.Account, uri: str) -> pj.Buddy:
        buddy = self._buddies.get(uri)
        if buddy is not None:
            self._buddies.move_to_end(uri)
            return buddy
        bc = pj.BuddyConfig()
        bc.uri = uri
        bc.subscribe = False
        buddy = pj.Buddy()
        try:
            buddy.create(account, bc)
        except pj.Error as err:
            raise SipError(f"cannot send to {uri}: {err.reason}") from None
        self._buddies[uri] = buddy
        if len(self._buddies) > _BUDDY_CACHE:
            # The IM status goes to the account, so dropping an idle buddy loses nothing.
            self._buddies.popitem(last=False)
        return buddy
