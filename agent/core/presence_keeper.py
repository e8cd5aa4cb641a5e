"""Keeps the device's presence (owner thread): inputs, requests and re-registrations in;
SIP presence, retained MQTT state and doorbell messages out.

Decisions live in agent.core.presence (pure); the SIP side sits behind the `PresenceSip` port
(agent.core.ports), so the tests can drive this with fakes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from agent.config.model import Config, InputConfig, InputRule
from agent.core.ports import BuddyState, InputPins, PresenceSip, SipError
from agent.core.presence import (
    Pidf,
    Presence,
    PresenceError,
    PresenceState,
    parse_request,
    pidf_of,
    render_note,
    request,
)
from agent.core.sipuri import InvalidSipUri, address_of_record
from agent.core.topics import Topics

log = logging.getLogger(__name__)

CLOSED = Pidf(open=False, activity="unknown", note="")


class OutputView(Protocol):
    """What the keeper reads of the outputs (agent.core.ports.OutputPins)."""

    def output_names(self) -> Sequence[str]: ...

    def output_is_on(self, name: str) -> bool: ...


class Publisher(Protocol):
    """Retained state on MQTT (agent.core.ports.Link)."""

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None: ...


SendMessage = Callable[[str, str], None]  # to, body


class PresenceKeeper:
    def __init__(
        self,
        config: Config,
        sip: PresenceSip | None,
        inputs: InputPins,
        outputs: OutputView,
        mqtt: Publisher | None,
        send_message: SendMessage,
        topics: Topics,
    ) -> None:
        self.config = config
        self.mode = config.sip.presence
        # In "off" mode nothing is sent over SIP; MQTT still tells what the device is doing.
        self._sip = sip if self.mode != "off" else None
        self._watch_sip = sip
        self._inputs = inputs
        self._outputs = outputs
        self._mqtt_link = mqtt
        self._send_message = send_message
        self._topics = topics
        self._inputs_cfg: dict[str, InputConfig] = {i.name: i for i in config.gpio.inputs}
        watchers = config.presence.watchers
        self._watchers = set(config.access.allow if watchers is None else watchers)
        self.state = PresenceState(config.presence.status, config.presence.note)
        self.current: Presence | None = None
        self.buddies: dict[str, BuddyState] = {}

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Apply the inputs' current states, send the first presence, watch the contacts."""
        for name in self._inputs.names():
            rule = self._rule(name, self._inputs.is_active(name))
            self.state = self.state.with_rule(rule.status, rule.note)
        self.refresh(force=True)
        if self._watch_sip is not None:
            for contact in self.config.presence.watch:
                self._watch_sip.watch(contact.id, contact.uri, self.on_buddy)

    def close(self) -> None:
        """Withdraw: watchers see us closed (offline), subscriptions to contacts end."""
        if self._watch_sip is not None:
            self._watch_sip.close(CLOSED if self._sip is not None else None)
        # What watchers now see; the next start announces the real state again.
        self.current = Presence("offline", "")
        self._mqtt(self._topics.presence_state, self.current.as_json(), retain=True)

    # -- what changes it --------------------------------------------------------------

    def on_input(self, name: str, active: bool) -> None:
        cfg = self._inputs_cfg.get(name)
        if cfg is None:
            return
        log.info("input %s %s", name, cfg.active_text if active else cfg.inactive_text)
        self._mqtt(self._topics.input_state(name), "ON" if active else "OFF", retain=True)
        # The same change as a live event, never retained: Home Assistant's device triggers
        # ("doorbell pressed") must not fire again for an old press when it (re)subscribes.
        self._mqtt(self._topics.input_event(name), "ON" if active else "OFF", retain=False)
        rule = self._rule(name, active)
        self.state = self.state.with_rule(rule.status, rule.note)
        self.refresh()
        if rule.message:
            body = render_note(rule.message, self.values())
            for to in cfg.message_to:
                log.info("input %s: sending %r to %s", name, body, to)
                try:
                    self._send_message(to, body)
                except SipError as err:  # one bad destination must not stop the rest
                    log.warning("input %s: message to %s not sent: %s", name, to, err)

    def set(self, status: str, note: str | None) -> str:
        """The `presence` command: raises PresenceError with what to send instead."""
        req = request(status, note or None)
        self.state = self.state.with_request(req, self.config.presence.note)
        self.refresh()
        assert self.current is not None
        return f"presence {self.current.describe()}"

    def on_mqtt_set(self, text: str) -> str | None:
        """`B/presence/set`; why the payload was refused (the caller logs it), or None."""
        try:
            req = parse_request(text)
        except PresenceError as err:
            return str(err)
        self.state = self.state.with_request(req, self.config.presence.note)
        log.info("presence set over MQTT: %s", req.status)
        self.refresh()
        return None

    def on_mqtt_status(self, text: str) -> str | None:
        """`B/presence/status/set` (Home Assistant's select): the status, the note kept."""
        return self._apply_mqtt("status", lambda: self.state.with_status(text))

    def on_mqtt_note(self, text: str) -> str | None:
        """`B/presence/note/set` (Home Assistant's text): the note, the status kept."""
        template = self.config.presence.note
        return self._apply_mqtt("note", lambda: self.state.with_note(text, template))

    def _apply_mqtt(self, what: str, change: Callable[[], PresenceState]) -> str | None:
        """Why the change was refused (the caller logs it), or None."""
        try:
            self.state = change()
        except PresenceError as err:
            return str(err)
        log.info("presence %s set over MQTT", what)
        self.refresh()
        return None

    def reconfigure(self, config: Config) -> None:
        """A reload: new input rules, watchers and note template (pins stay as they are)."""
        old_template = self.config.presence.note
        self.config = config
        self._inputs_cfg = {i.name: i for i in config.gpio.inputs}
        watchers = config.presence.watchers
        self._watchers = set(config.access.allow if watchers is None else watchers)
        if self.state.template == old_template:
            # Nobody wrote a note of their own: the configured template follows the config.
            self.state = PresenceState(self.state.status, config.presence.note)
        self.refresh()

    def on_output_changed(self) -> None:
        self.refresh()

    def on_registered(self) -> None:
        """A REGISTER succeeded: the server may have restarted and lost our publication."""
        if self.mode == "publish" and self._sip is not None:
            self._sip.republish()

    # -- serve mode ---------------------------------------------------------------------

    def authorize_watcher(self, from_uri: str) -> tuple[int, str]:
        """Who may SUBSCRIBE to us: 200 for the configured watchers, 403 for everyone else."""
        if self.mode == "off":
            log.warning("SUBSCRIBE from %s refused: presence is off", from_uri)
            return 489, "Bad Event"
        try:
            aor = address_of_record(from_uri)
        except InvalidSipUri:
            aor = from_uri
        if aor in self._watchers:
            log.info("presence watcher %s accepted", aor)
            return 200, "OK"
        log.warning("SUBSCRIBE from %s refused: not in presence.watchers", aor)
        return 403, "Forbidden"

    # -- watched contacts ---------------------------------------------------------------

    def on_buddy(self, buddy: BuddyState) -> None:
        previous = self.buddies.get(buddy.id)
        self.buddies[buddy.id] = buddy
        if previous is None or previous.as_dict() != buddy.as_dict():
            log.info("contact %s (%s) is %s", buddy.id, buddy.uri, _describe(buddy))
        self._mqtt(self._topics.buddy_state(buddy.id), json.dumps(buddy.as_dict()), True)

    # -- state out ----------------------------------------------------------------------

    def values(self) -> dict[str, str]:
        """What note templates may name: inputs by their words, outputs on/off."""
        values = {
            n: "on" if self._outputs.output_is_on(n) else "off"
            for n in self._outputs.output_names()
        }
        for name in self._inputs.names():
            cfg = self._inputs_cfg[name]
            values[name] = cfg.active_text if self._inputs.is_active(name) else cfg.inactive_text
        return values

    def inputs_now(self) -> dict[str, tuple[bool, str]]:
        """Each input: (active?, its word: "open"/"closed")."""
        found = {}
        for name in self._inputs.names():
            active = self._inputs.is_active(name)
            cfg = self._inputs_cfg[name]
            found[name] = (active, cfg.active_text if active else cfg.inactive_text)
        return found

    def refresh(self, force: bool = False) -> None:
        """Recompute the effective presence; send it wherever it changed."""
        presence = self.state.effective(self.values())
        if presence == self.current and not force:
            return
        self.current = presence
        log.info("presence %s", presence.describe())
        if self._sip is not None:
            self._sip.set_presence(pidf_of(presence))
        self._mqtt(self._topics.presence_state, presence.as_json(), retain=True)

    def announce(self) -> None:
        """Retained state again after an MQTT (re)connect."""
        if self.current is not None:
            self._mqtt(self._topics.presence_state, self.current.as_json(), retain=True)
        for name in self._inputs.names():
            state = "ON" if self._inputs.is_active(name) else "OFF"
            self._mqtt(self._topics.input_state(name), state, retain=True)
        for buddy in self.buddies.values():
            self._mqtt(self._topics.buddy_state(buddy.id), json.dumps(buddy.as_dict()), True)

    def status_lines(self) -> list[str]:
        lines = []
        if self.current is not None:
            lines.append(f"presence {self.current.describe()} ({self.mode})")
        if self._inputs.names():
            words = self.values()
            lines.append("inputs: " + ", ".join(f"{n} {words[n]}" for n in self._inputs.names()))
        if self.config.presence.watch:
            parts = []
            for contact in self.config.presence.watch:
                buddy = self.buddies.get(contact.id)
                parts.append(f"{contact.id} {_describe(buddy) if buddy else 'unknown'}")
            lines.append("contacts: " + ", ".join(parts))
        return lines

    # -- helpers --------------------------------------------------------------------------

    def _rule(self, name: str, active: bool) -> InputRule:
        cfg = self._inputs_cfg[name]
        return cfg.when_active if active else cfg.when_inactive

    def _mqtt(self, topic: str, payload: str, retain: bool) -> None:
        if self._mqtt_link is not None:
            self._mqtt_link.publish(topic, payload, retain=retain)


def _describe(buddy: BuddyState) -> str:
    return f"{buddy.status} — {buddy.note}" if buddy.note else buddy.status
