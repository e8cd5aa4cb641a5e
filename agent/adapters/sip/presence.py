"""The pjsua2 side of presence: our own status (PUBLISH or NOTIFY) and watched contacts.

Works on the account of `agent.adapters.sip.stack.SipStack`; everything here runs on the owner
thread (pjsua2 calls `onBuddyState` from inside `libHandleEvents`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pjsua2 as pj

from agent.adapters.sip.guard import guarded
from agent.adapters.sip.stack import SipStack
from agent.core.counters import Counters
from agent.core.ports import BuddyState
from agent.core.presence import (
    PUBLISH_RETRY_MAX_S,
    Pidf,
    from_xml_text,
    retry_delay,
    status_of_pidf,
    xml_text,
)
from agent.core.siptext import clean

log = logging.getLogger(__name__)

_ACTIVITIES = {
    "unknown": pj.PJRPID_ACTIVITY_UNKNOWN,
    "away": pj.PJRPID_ACTIVITY_AWAY,
    "busy": pj.PJRPID_ACTIVITY_BUSY,
}
_ACTIVITY_NAMES = {v: k for k, v in _ACTIVITIES.items()}
BuddyListener = Callable[[BuddyState], None]


class _WatchedBuddy(pj.Buddy):
    def __init__(
        self, contact_id: str, uri: str, listener: BuddyListener, counters: Counters
    ) -> None:
        super().__init__()
        self.contact_id = contact_id
        self.uri = uri
        self._listener = listener
        self.counters = counters

    @guarded("on_buddy_state")
    def onBuddyState(self) -> None:
        try:
            info = self.getInfo()
        except pj.Error as err:
            log.warning("presence of %s unreadable: %s", self.uri, err.info())
            return
        pres = info.presStatus
        if pres.status == pj.PJSUA_BUDDY_STATUS_UNKNOWN:
            open_ = None
        else:
            open_ = pres.status == pj.PJSUA_BUDDY_STATUS_ONLINE
        activity = _ACTIVITY_NAMES.get(pres.activity, "unknown")
        # statusText is pjsua's "Online"/"Offline"/"?" when the contact sent no note.
        # Written by the contact: anything at all. pjlib's XML parser leaves entity references
        # as they were: decode them here.
        note = from_xml_text(clean(pres.note))
        self._listener(
            BuddyState(
                self.contact_id,
                self.uri,
                status_of_pidf(open_, activity),
                note,
                clean(info.subStateName),
            )
        )


class SipPresence:
    """Sets the account's presence and keeps the subscriptions to watched contacts."""

    def __init__(self, stack: SipStack) -> None:
        self._stack = stack
        self._last: Pidf | None = None
        # pjsua2 calls these back for as long as they exist: keep every one.
        self._buddies: dict[str, _WatchedBuddy] = {}
        self._reregister_at: float | None = None
        self._failures = 0
        self._last_failure = 0.0
        # Every change NOTIFYs every watcher: changes go out at most presence_per_s a second,
        # the latest state after a pause (sip.limits.presence_per_s).
        self._gap_s = 1.0 / stack.config.limits.presence_per_s
        self._sent_at = -self._gap_s
        self._pending: Pidf | None = None
        stack.poll_hooks.append(self._after_poll)
        stack.deadlines.append(self._due)

    def _after_poll(self) -> None:
        now = time.monotonic()
        if self._stack.take_publish_failure():
            if now - self._last_failure > 2 * PUBLISH_RETRY_MAX_S:
                self._failures = 0  # an old failure does not slow down the next recovery
            self._failures += 1
            self._last_failure = now
            if self._reregister_at is None and self._stack.config.registrar:
                delay = retry_delay(self._failures)
                log.warning("PUBLISH failed; registering again in %.0fs to publish again", delay)
                self._reregister_at = now + delay
        if self._pending is not None and now - self._sent_at >= self._gap_s:
            pidf, self._pending = self._pending, None
            self._send(pidf)
        if self._reregister_at is not None and now >= self._reregister_at:
            self._reregister_at = None
            # On success pjsua starts a new publication and the agent sends its presence
            # again (agent.core.presence_keeper.on_registered).
            self._stack.register_again()

    def set_presence(self, pidf: Pidf) -> None:
        """PUBLISH (publish mode) or NOTIFY every watcher (serve mode) with this state."""
        if time.monotonic() - self._sent_at < self._gap_s:
            self._pending = pidf  # sent by _after_poll once the gap has passed
            return
        self._pending = None
        self._send(pidf)

    def _due(self) -> float | None:
        """When a held-back change is due (time.monotonic()), for the loop's wait."""
        return None if self._pending is None else self._sent_at + self._gap_s

    def _send(self, pidf: Pidf) -> None:
        self._sent_at = time.monotonic()
        account = self._stack.account
        if account is None:
            return
        ps = pj.PresenceStatus()
        ps.status = pj.PJSUA_BUDDY_STATUS_ONLINE if pidf.open else pj.PJSUA_BUDDY_STATUS_OFFLINE
        ps.activity = _ACTIVITIES[pidf.activity]
        # pjsua prints the note into the PIDF unescaped: `&` or `</note>` would break it.
        ps.note = xml_text(pidf.note)
        try:
            account.setOnlineStatus(ps)
        except pj.Error as err:
            log.warning("presence not sent: %s", err.info())
            return
        self._last = pidf

    def republish(self) -> None:
        """Send the last state again (after a re-registration, the server may have lost it)."""
        if self._last is not None:
            self.set_presence(self._last)

    def watch(self, contact_id: str, uri: str, listener: BuddyListener) -> None:
        """Subscribe to a contact's presence; its changes go to `listener`."""
        account = self._stack.account
        assert account is not None
        cfg = pj.BuddyConfig()
        cfg.uri = uri
        cfg.subscribe = True
        buddy = _WatchedBuddy(contact_id, uri, listener, self._stack.counters)
        try:
            buddy.create(account, cfg)
        except pj.Error as err:
            log.warning("cannot watch %s (%s): %s", contact_id, uri, err.info())
            return
        self._buddies[contact_id] = buddy
        log.info("watching the presence of %s (%s)", contact_id, uri)

    def close(self, pidf: Pidf | None) -> None:
        """Say goodbye before the stack shuts down: last state, then drop the subscriptions.

        Deleting a pjsua2 Buddy unsubscribes it; the account's shutdown would delete them
        from C++ behind Python's back, so they must go first.
        """
        self._pending = None
        if pidf is not None:
            self._send(pidf)  # the last word, however soon after the one before
        self._buddies.clear()
