"""One fake per port of the core (agent.core.ports), and the clock and message the tests share.

Each fake does what its adapter does wherever the core can tell the difference; the shared
contract test (tests/adapters/test_contracts.py) runs the same checks on the fake and on the
real adapter, as gpiozero runs one pin test against every pin factory. Beyond that a fake
records what it was asked, for the test to read. Pure: importable on a bare Python (the pure
suite, tests/pure, and the benchmarks use these).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from agent.adapters.outbox.model import Quota
from agent.config.model import OutputConfig
from agent.core.durations import format_duration
from agent.core.messages import IncomingMessage
from agent.core.ports import Added, BuddyState, Row, SipError, event_size
from agent.core.presence import Pidf
from agent.core.sipuri import InvalidSipUri, parse_sip_uri
from agent.core.timers import Timers

# Outputs as a config names them: a gate pulsed up to 10 s, a lamp, a dimmer from 20 to 90 %.
GATE = OutputConfig("gate", "GPIO17", True, False, False, False, 100, 0, 100, 1.0, 10.0)
LAMP = replace(GATE, name="lamp", pin="GPIO18")
DIMMER = replace(GATE, name="dimmer", pin="GPIO12", pwm=True, level_min=20, level_max=90)


class Clock:
    """A monotonic clock the test moves: `clock.now += 5`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(**overrides: str) -> IncomingMessage:
    """A MESSAGE from the owner through a PBX (`on lamp`), with any field overridden."""
    fields = {
        "from_uri": '"Owner" <sip:owner@pbx.example.org>',
        "to_uri": "<sip:porch@pbx.example.org>",
        "contact": "",
        "body": "on lamp",
        "content_type": "text/plain",
        "source": "192.0.2.7:40000",
        "transport": "udp",
    }
    fields.update(overrides)
    return IncomingMessage.new(**fields, received=datetime(2026, 1, 2, 3, 4, 5, 6000, UTC))


class FakeSip:
    """`Sip`: sends nothing; refuses what is not a SIP URI, as the adapter does (SipError).
    Answers are recorded; `defers_answers` False is pjsua 2.15, which answered 200 itself."""

    def __init__(self, routed: bool = True, defers_answers: bool = False) -> None:
        self.routed = routed
        self.defers_answers = defers_answers
        self.answers: list[tuple[str, int]] = []  # (message id, code)
        self.sent: list[tuple[str, str, str | None]] = []  # (to, body, token)
        self.accounts: list[str | None] = []  # the account each left by
        self.content_types: list[str] = []

    def answer(self, msg: IncomingMessage, code: int, reason: str) -> None:
        self.answers.append((msg.id, code))

    def send_message(
        self,
        to: str,
        body: str,
        content_type: str = "text/plain",
        token: str | None = None,
        account: str | None = None,
    ) -> None:
        try:
            parse_sip_uri(to)
        except InvalidSipUri as err:
            raise SipError(str(err)) from None
        self.sent.append((to, body, token))
        self.accounts.append(account)
        self.content_types.append(content_type)


class FakeLink:
    """`Link` (MQTT): publishes while connected, on the current session only, as paho's link."""

    def __init__(self) -> None:
        self.connected = True
        self.session = 1
        self.broker = "broker:1883"
        self.published: list[tuple[str, str, bool]] = []  # (topic, payload as text, retained)
        self.events: list[tuple[int, str, bytes]] = []  # (message id, topic, payload) at QoS 1
        # What the owner loop does after each turn (Agent.flush): `last` lets events go out.
        self.turn_ends: Callable[[], None] = lambda: None

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        self.publish_event(topic, payload, retain=retain)

    def publish_event(
        self, topic: str, payload: bytes | str, *, retain: bool = False, session: int | None = None
    ) -> int | None:
        if not self.connected or (session is not None and session != self.session):
            return None
        data = payload.encode() if isinstance(payload, str) else payload
        self.published.append((topic, data.decode("utf-8", "replace"), retain))
        self.events.append((len(self.published), topic, data))
        return len(self.published)

    def last(self, topic: str) -> str:
        """The newest payload on `topic`, once the loop's turn has ended."""
        self.turn_ends()
        return [p for t, p, _ in self.published if t == topic][-1]

    def last_retained(self, topic: str) -> tuple[str, bool]:
        """The newest payload on `topic` and whether it was retained."""
        return next((p, r) for t, p, r in reversed(self.published) if t == topic)


class FakePins:
    """`OutputPins` and `InputPins` as the adapters behave: outputs start safe, a digital one is
    0 or 1, a PWM level within 0..1; pulse and blink run on `timers` (their clock is the test's:
    `timers.run_due()` after moving it), the listener hears what the adapter announces. Inputs
    are set by the test (`pins.active["door"] = True`)."""

    def __init__(
        self,
        outputs: Iterable[OutputConfig] = (GATE,),
        inputs: Iterable[str] = (),
        timers: Timers | None = None,
    ) -> None:
        self.configs = {o.name: o for o in outputs}
        self.level_of = {name: 1.0 if o.safe else 0.0 for name, o in self.configs.items()}
        self.state = {name: level > 0 for name, level in self.level_of.items()}  # on or off
        self.timers = timers if timers is not None else Timers(Clock())
        self.changes = 0  # writes to any output
        self.calls: list[tuple[object, ...]] = []  # pulses and blinks asked for
        self.active = {name: False for name in inputs}
        self._running: dict[str, str | None] = {}  # name -> "pulse 2s", "blink x3"
        self._on_change: Callable[[str, bool], None] | None = None

    def set_listener(self, on_change: Callable[[str, bool], None] | None) -> None:
        self._on_change = on_change

    def output_names(self) -> list[str]:
        return list(self.configs)

    def output_config(self, name: str) -> OutputConfig:
        return self.configs[name]

    def output_is_on(self, name: str) -> bool:
        return self.state[name]

    def level(self, name: str) -> float:
        return self.level_of[name]

    def set_output(self, name: str, on: bool) -> None:
        self._command(name, 1.0 if on else 0.0)

    def set_level(self, name: str, level: float) -> None:
        self._command(name, level)

    def pulse(self, name: str, seconds: float) -> None:
        self.calls.append(("pulse", name, seconds))
        self._command(name, 1.0, f"pulse {format_duration(seconds)}")
        self.timers.call_later(seconds, name, lambda: self._write(name, 0.0))

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None:
        self.calls.append(("blink", name, on_s, off_s, count))
        self._command(name, 1.0, "blink" if count is None else f"blink x{count}")
        self._blink(name, on_s, off_s, count)

    def _blink(self, name: str, on_s: float, off_s: float, left: int | None) -> None:
        """Off after `on_s`, on again after `off_s`, `left` times (None: until the next
        command); only the start and the end are announced, as by the adapter."""

        def off() -> None:
            done = left is not None and left <= 1
            self._write(name, 0.0, announce=done)
            if not done:
                self.timers.call_later(off_s, name, on)

        def on() -> None:
            self._write(name, 1.0, announce=False)
            self._blink(name, on_s, off_s, None if left is None else left - 1)

        self.timers.call_later(on_s, name, off)

    def _command(self, name: str, level: float, running: str | None = None) -> None:
        """A new command: what ran on the output ends; `level` now, `running` from now on."""
        self.timers.cancel(name)
        self._running[name] = running
        self._write(name, level)

    def _write(self, name: str, level: float, announce: bool = True) -> None:
        level = min(1.0, max(0.0, level)) if self.configs[name].pwm else float(level > 0)
        self.changes += 1
        self.level_of[name] = level
        self.state[name] = level > 0
        if announce and self._on_change is not None:
            self._on_change(name, level > 0)

    def state_payload(self, name: str) -> str:
        word = "ON" if self.output_is_on(name) else "OFF"
        if not self.configs[name].pwm:
            return word
        return json.dumps({"state": word, "level": round(self.level(name) * 100, 1)})

    def activity(self, name: str) -> str | None:
        return self._running.get(name) if self.timers.pending(name) else None

    def names(self) -> list[str]:
        return list(self.active)

    def is_active(self, name: str) -> bool:
        return self.active[name]


class FakeNotifier:
    """`Notifier`: what systemd would have been told, each message as lab.notify's listener
    records it: READY=1 with the status, STATUS= only when it says something new, STOPPING=1."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self._last = ""

    def ready(self, status: str) -> None:
        self._last = status
        self.messages.append({"READY": "1", "STATUS": status})

    def status(self, status: str) -> None:
        if status != self._last:
            self._last = status
            self.messages.append({"STATUS": status})

    def stopping(self, status: str = "stopping") -> None:
        self.messages.append({"STOPPING": "1", "STATUS": status})


class FakeOutbox:
    """`Outbox` in memory: ids, order, dedupe keys, bounds and `when_full` as the adapter has
    them; always durable (the disk's troubles are the adapter's own tests')."""

    def __init__(
        self, capacity: int = 10000, when_full: str = "drop_oldest", max_disk: int = 16 * 1024**2
    ) -> None:
        self.capacity = capacity
        self.when_full = when_full
        self.max_disk = max_disk
        self.rows: dict[int, Row] = {}
        self.seen: set[str] = set()
        self.dropped = self.refused = 0
        self.trouble: str | None = None
        self.durable = True
        self.in_memory = self.memory_bytes = 0
        self._announced: set[str] = set()
        self._next_id = 1
        self._bytes = 0  # of the rows' topics and payloads

    @property
    def pending(self) -> int:
        return len(self.rows)

    def disk_bytes(self) -> int:
        return self._bytes

    def add(
        self, topic: str, payload: bytes, dedupe_key: str | None = None, *, memory_ok: bool = True
    ) -> Added:
        if dedupe_key is not None and dedupe_key in self.seen:
            return Added(None, duplicate=True)
        drops = self._room(event_size(topic, payload))
        if drops is None:
            # Its retransmission is refused too, unless the sender was told "not kept" (500).
            if dedupe_key is not None and memory_ok:
                self.seen.add(dedupe_key)
            self.refused += 1
            return Added(None, refused=True)
        if dedupe_key is not None:
            self.seen.add(dedupe_key)
        self.remove(drops)
        self.dropped += len(drops)
        row = Row(self._next_id, topic, payload)
        self._next_id += 1
        self.rows[row.id] = row
        self._bytes += row.size
        return Added(row.id, dropped=len(drops), durable=True)

    def _room(self, size: int) -> list[int] | None:
        """The oldest ids to drop so that `size` more bytes fit, within the adapter's bounds
        (`capacity` events, its share of `max_disk` for their bytes); None: refuse it."""
        used, limit = self._bytes, Quota(self.max_disk).event_bytes
        oldest = iter(self.rows.values())  # ids only grow: the order they were added in
        drops: list[int] = []
        while len(self.rows) - len(drops) >= self.capacity or used + size > limit:
            row = next(oldest, None)
            if self.when_full == "refuse" or row is None:
                return None
            drops.append(row.id)
            used -= row.size
        return drops

    def replace(self, row_id: int, payload: bytes) -> None:
        if (row := self.rows.get(row_id)) is not None:
            self.rows[row_id] = replace(row, payload=payload)
            self._bytes += len(payload) - len(row.payload)

    def after(self, row_id: int, limit: int) -> list[Row]:
        return [r for r in self.rows.values() if r.id > row_id][:limit]

    def remove(self, row_ids: Iterable[int]) -> None:
        for row_id in row_ids:
            if (row := self.rows.pop(row_id, None)) is not None:
                self._bytes -= row.size

    def maintain(self) -> bool:
        return False

    def announced(self) -> set[str]:
        return set(self._announced)

    def set_announced(self, topics: Iterable[str]) -> None:
        self._announced = set(topics)


class FakeSipPresence:
    """`PresenceSip`: what would have been published; watched contacts' listeners, to call."""

    def __init__(self) -> None:
        self.sent: list[Pidf] = []
        self.republished = 0
        self.watching: dict[str, Callable[[BuddyState], None]] = {}
        self.closed_with: list[Pidf | None] = []

    def set_presence(self, pidf: Pidf) -> None:
        self.sent.append(pidf)

    def republish(self) -> None:
        self.republished += 1

    def watch(self, contact_id: str, uri: str, listener: Callable[[BuddyState], None]) -> None:
        self.watching[contact_id] = listener

    def close(self, pidf: Pidf | None) -> None:
        self.closed_with.append(pidf)


class FakeDevice:
    """`commands.Controls` (what a command acts on; agent.core.device.DeviceControls in the
    agent): records what the commands asked for."""

    def __init__(self, outputs: Sequence[OutputConfig] = (GATE, LAMP, DIMMER)) -> None:
        self.configs = {o.name: o for o in outputs}
        self.levels = {name: 0.0 for name in self.configs}
        self.calls: list[tuple[object, ...]] = []
        self.presence = ("available", "")

    def output_names(self) -> list[str]:
        return list(self.configs)

    def output_config(self, name: str) -> OutputConfig:
        return self.configs[name]

    def output_is_on(self, name: str) -> bool:
        return self.levels[name] > 0

    def set_output(self, name: str, on: bool) -> None:
        self.levels[name] = 1.0 if on else 0.0

    def set_level(self, name: str, level: float) -> None:
        self.levels[name] = level

    def pulse(self, name: str, seconds: float) -> None:
        self.calls.append(("pulse", name, seconds))

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None:
        self.calls.append(("blink", name, on_s, off_s, count))

    def set_presence(self, status: str, note: str) -> str:
        self.presence = (status, note)
        return f"presence {status}"

    def status_lines(self) -> list[str]:
        return ["outputs: gate off", "SIP direct"]
