"""The ports: every way the core reaches the world, as small protocols the adapters implement.

The core never imports an adapter; the owner loop (agent.loop) builds the adapters and hands
them in. Each port has one fake in the tests (lab/fakes.py), checked against the real
adapter by one shared contract test (tests/adapters/test_contracts.py).

| port | implemented by |
| --- | --- |
| `Sip` (and `SipError`) | agent.adapters.sip.stack.SipStack |
| `PresenceSip` (`BuddyState`) | agent.adapters.sip.presence.SipPresence |
| `Link` | agent.adapters.mqtt.MqttLink |
| `OutputPins` | agent.adapters.gpio.Outputs |
| `InputPins` | agent.adapters.inputs.Inputs |
| `Notifier` | agent.adapters.service.Notifier |
| `Outbox` (`Added`, `Row`) | agent.adapters.outbox.store.Outbox |
| `Store` (in agent.core.codes, beside the codes' rules) | agent.adapters.codestore.CodeFile |
| `Inbox` | agent.inbox.Inbox |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from agent.config.model import OutputConfig
from agent.core.record import record

if TYPE_CHECKING:
    from agent.core.events import Event
    from agent.core.messages import IncomingMessage
    from agent.core.presence import Pidf


# -- SIP ------------------------------------------------------------------------------------


class SipError(Exception):
    """A SIP request could not be sent (bad URI, no transport)."""


# How the core answers a received MESSAGE (with pjproject 2.16+; 2.15 answered 200 already).
OK = (200, "OK")
NOT_STORED = (500, "Not Stored")  # the sender's UA tries again


class Answering(Protocol):
    """The SIP adapter, as far as answering a received MESSAGE goes (agent.core.intake)."""

    @property
    def defers_answers(self) -> bool:
        """pjproject 2.16+: MESSAGE is answered by `answer`; else pjsua answered 200 itself."""

    def answer(self, msg: IncomingMessage, code: int, reason: str) -> None:
        """Answer `msg` now (a no-op where pjsua answered already)."""


class Sip(Answering, Protocol):
    """Sending MESSAGEs; the final status comes back as `on_message_status` (agent.core.agent)."""

    routed: bool  # requests go through a registrar or proxy (which vouches for senders)

    def send_message(
        self,
        to: str,
        body: str,
        content_type: str = "text/plain",
        token: str | None = None,
        account: str | None = None,
    ) -> None:
        """Send now, or raise SipError."""


@record
class BuddyState:
    """A watched contact's presence, as the SIP side last heard it."""

    id: str
    uri: str
    status: str  # available | away | busy | offline | unknown
    note: str
    subscription: str  # pjsua's state name: NULL, SENT, ACCEPTED, PENDING, ACTIVE, TERMINATED

    def as_dict(self) -> dict[str, str]:
        return {
            "uri": self.uri,
            "status": self.status,
            "note": self.note,
            "subscription": self.subscription.lower(),
        }


class PresenceSip(Protocol):
    """The device's own presence on the SIP side (PUBLISH, or NOTIFY to watchers)."""

    def set_presence(self, pidf: Pidf) -> None: ...

    def republish(self) -> None: ...

    def watch(self, contact_id: str, uri: str, listener: Callable[[BuddyState], None]) -> None: ...

    def close(self, pidf: Pidf | None) -> None: ...


# -- MQTT -----------------------------------------------------------------------------------


class EventLink(Protocol):
    """What the outbox's delivery needs of the broker connection (agent.core.relay)."""

    session: int  # counts connections: an event belongs to the one it was published on

    def publish_event(
        self, topic: str, payload: bytes | str, *, retain: bool = False, session: int | None = None
    ) -> int | None:
        """Publish at QoS 1 on connection `session` (None: the current one); the message id
        (MqttPublished follows the broker's PUBACK), or None when that connection is gone."""


class Link(EventLink, Protocol):
    """The connection to the broker: events through the outbox, retained state straight."""

    connected: bool

    @property
    def broker(self) -> str: ...  # "host:port" connected to (or tried next)

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish now if connected (retained state is announced again on every connect)."""


# -- GPIO -----------------------------------------------------------------------------------


class OutputPins(Protocol):
    """The device's outputs by name; every change is reported to the listener it was given."""

    def output_names(self) -> Sequence[str]: ...

    def output_config(self, name: str) -> OutputConfig: ...

    def output_is_on(self, name: str) -> bool: ...

    def set_output(self, name: str, on: bool) -> None: ...

    def set_level(self, name: str, level: float) -> None: ...

    def pulse(self, name: str, seconds: float) -> None: ...

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None: ...

    def level(self, name: str) -> float: ...

    def state_payload(self, name: str) -> str: ...

    def activity(self, name: str) -> str | None: ...


class InputPins(Protocol):
    """The device's inputs by name; a change arrives as an InputChanged event."""

    def names(self) -> Sequence[str]: ...

    def is_active(self, name: str) -> bool: ...


# -- systemd --------------------------------------------------------------------------------


class Notifier(Protocol):
    """The service manager: READY=1 once, STATUS= whenever the summary changes."""

    def ready(self, status: str) -> None: ...

    def status(self, status: str) -> None: ...


# -- the outbox -----------------------------------------------------------------------------


def event_size(topic: str, payload: bytes) -> int:
    """What an event counts against the outbox's bounds: its topic and payload bytes."""
    return len(topic.encode()) + len(payload)


@record
class Row:
    """One event kept by the outbox."""

    id: int
    topic: str
    payload: bytes

    @property
    def size(self) -> int:
        return event_size(self.topic, self.payload)


@record
class Added:
    """What became of `Outbox.add`: the new row's id, or None with the reason."""

    id: int | None
    duplicate: bool = False
    refused: bool = False
    dropped: int = 0  # older events dropped to make room (when_full = "drop_oldest")
    durable: bool = False  # committed to disk; False: held in memory (or not kept at all)


class Outbox(Protocol):
    """A bounded FIFO of events with stable, increasing ids, kept until the broker has them
    (on disk when the disk takes them). Owner thread only."""

    capacity: int
    when_full: str  # drop_oldest | refuse

    @property
    def pending(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def refused(self) -> int: ...

    @property
    def trouble(self) -> str | None:
        """Why events are not durable now ("disk full", ...); None: they are."""

    @property
    def durable(self) -> bool: ...

    @property
    def in_memory(self) -> int: ...

    @property
    def memory_bytes(self) -> int: ...

    @property
    def max_disk(self) -> int: ...

    def disk_bytes(self) -> int: ...

    def add(
        self, topic: str, payload: bytes, dedupe_key: str | None = None, *, memory_ok: bool = True
    ) -> Added:
        """Keep an event; a `dedupe_key` seen before makes it a duplicate (not kept again)."""

    def replace(self, row_id: int, payload: bytes) -> None: ...

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to `limit` rows with ids above `row_id`, oldest first."""

    def remove(self, row_ids: Iterable[int]) -> None: ...

    def maintain(self) -> bool:
        """Once per loop turn: retry a failing disk; True when ids of pending rows changed."""

    def announced(self) -> set[str]:
        """The discovery topics announced last time (to clear those no longer configured)."""

    def set_announced(self, topics: Iterable[str]) -> None: ...


# -- the inbox ------------------------------------------------------------------------------


class Inbox(Protocol):
    """Where other threads post events for the owner loop (agent.inbox)."""

    def put(self, event: Event) -> None: ...
