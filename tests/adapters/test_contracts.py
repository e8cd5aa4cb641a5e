"""One contract per port, held by its fake (lab.fakes) and its adapter alike.

As gpiozero runs one pin test against every pin factory, each contract runs twice: on the fake
the core's tests use and on the real adapter (SQLite, MockFactory pins, a real NOTIFY_SOCKET,
the session's Mosquitto). What differs between the two is only how a test drives or reads
them (the small `*Side` helpers); every assertion is stated once. Here: the ports' members,
the Notifier and the Link; the Outbox in test_contracts_outbox.py, the pins in
test_contracts_gpio.py. A member added to a port fails
`test_each_fake_and_adapter_has_every_member_of_its_port` until the fake and the adapter have it.
"""

from __future__ import annotations

import ast
import inspect
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from agent.adapters.gpio import Outputs
from agent.adapters.inputs import Inputs
from agent.adapters.mqtt import MqttLink
from agent.adapters.outbox.store import Outbox
from agent.adapters.service import Notifier
from agent.adapters.sip.presence import SipPresence
from agent.adapters.sip.stack import SipStack
from agent.config.load import parse_config
from agent.core import ports
from agent.core.mqtt_requests import PayloadBounds
from agent.core.topics import Topics
from agent.inbox import Inbox
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, FakeSipPresence
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe
from lab.notify import NotifyListener
from lab.waiting import wait_until

# -- each port, its fake and its adapter --------------------------------------------------

# The adapter and a fake made with no arguments, per port; Inbox has no fake: agent.inbox is
# pure, and the tests use it as it is.
PORTS: dict[str, tuple[type, Callable[[], object]]] = {
    "Answering": (SipStack, FakeSip),
    "Sip": (SipStack, FakeSip),
    "PresenceSip": (SipPresence, FakeSipPresence),
    "EventLink": (MqttLink, FakeLink),
    "Link": (MqttLink, FakeLink),
    "OutputPins": (Outputs, FakePins),
    "InputPins": (Inputs, FakePins),
    "Notifier": (Notifier, FakeNotifier),
    "Outbox": (Outbox, FakeOutbox),
}
WITHOUT_FAKE = {"Inbox"}


def port_members(port: type) -> dict[str, Any]:
    """What a Protocol declares, its bases' included: name -> function, property or type."""
    members: dict[str, Any] = {}
    for cls in reversed(port.__mro__):
        if getattr(cls, "_is_protocol", False) and cls is not Protocol:
            members.update({n: v for n, v in vars(cls).items() if not n.startswith("_")})
            members.update({n: t for n, t in cls.__annotations__.items() if n not in members})
    return members


def instance_attributes(cls: type) -> set[str]:
    """What a class's methods assign as `self.<name> = ...`: its instances' data."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return {
        target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    }


def signature_problem(declared: Any, implemented: Any) -> str | None:
    """Why `implemented` cannot stand in for the port's method `declared`, if it cannot:
    the port's parameters in its order and kinds, optional where the port's are, and
    nothing more that a caller must give."""
    if not callable(implemented):
        return "is not a method"
    want = list(inspect.signature(declared).parameters.values())[1:]
    have = list(inspect.signature(implemented).parameters.values())[1:]
    for w, h in zip(want, have, strict=False):
        if (w.name, w.kind) != (h.name, h.kind) or (w.default is not w.empty) > (
            h.default is not h.empty
        ):
            return f"takes ({', '.join(map(str, have))}), the port ({', '.join(map(str, want))})"
    if len(have) < len(want):
        return f"lacks {[w.name for w in want[len(have) :]]}"
    extra = [h.name for h in have[len(want) :] if h.default is h.empty]
    return f"also needs {extra}" if extra else None


def test_every_port_has_a_fake_checked_here() -> None:
    declared = {
        name
        for name, value in vars(ports).items()
        if isinstance(value, type)
        and value.__module__ == ports.__name__
        and getattr(value, "_is_protocol", False)
    }
    assert declared == set(PORTS) | WITHOUT_FAKE


@pytest.mark.parametrize("port", sorted(PORTS))
def test_each_fake_and_adapter_has_every_member_of_its_port(port: str) -> None:
    adapter, make_fake = PORTS[port]
    fake = make_fake()
    problems = []
    for name, declared in port_members(getattr(ports, port)).items():
        for owner, present in (
            (type(fake), hasattr(fake, name)),
            (adapter, hasattr(adapter, name) or name in instance_attributes(adapter)),
        ):
            implemented = getattr(owner, name, None)
            if not present:
                problems.append(f"{owner.__name__} has no {name}")
            elif inspect.isfunction(declared):
                if why := signature_problem(declared, implemented):
                    problems.append(f"{owner.__name__}.{name} {why}")
            elif inspect.isfunction(implemented):
                problems.append(f"{owner.__name__}.{name} is a method: the port reads a value")
    assert problems == [], f"{port}: {problems}"


# -- Notifier: sd_notify to a real NOTIFY_SOCKET, and FakeNotifier --------------------------


@dataclass
class NotifierSide:
    notifier: Notifier | FakeNotifier
    told: Callable[[], list[dict[str, str]]]  # every message, once STOPPING=1 has arrived


@pytest.fixture(params=["fake", "real"])
def notifier(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NotifierSide]:
    if request.param == "fake":
        fake = FakeNotifier()
        yield NotifierSide(fake, lambda: fake.messages)
        return
    # A short path: a unix socket's name has room for 107 bytes, a test's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="notify") as folder:
        listener = NotifyListener(Path(folder) / "sock")
        monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))

        def told() -> list[dict[str, str]]:
            listener.wait_for("STOPPING", "1")  # a datagram socket keeps the order
            return [fields for _, fields in listener.messages]

        yield NotifierSide(Notifier(), told)
        listener.close()


def test_ready_then_only_new_statuses_then_stopping(notifier: NotifierSide) -> None:
    n = notifier.notifier
    n.status("starting")
    n.ready("SIP registered")
    n.status("SIP registered")  # nothing new: systemd is not told again
    n.status("SIP registered; MQTT connected")
    n.status("SIP registered; MQTT connected")
    n.stopping("stopping (SIGTERM)")
    assert notifier.told() == [
        {"STATUS": "starting"},
        {"READY": "1", "STATUS": "SIP registered"},
        {"STATUS": "SIP registered; MQTT connected"},
        {"STOPPING": "1", "STATUS": "stopping (SIGTERM)"},
    ]


def test_ready_is_said_again_even_unchanged(notifier: NotifierSide) -> None:
    # After a reload READY=1 again ends systemd's "reloading", whatever the status says.
    n = notifier.notifier
    n.ready("up")
    n.ready("up")
    n.stopping()
    ready = {"READY": "1", "STATUS": "up"}
    assert notifier.told() == [ready, ready, {"STOPPING": "1", "STATUS": "stopping"}]


# -- Link: paho against the session's Mosquitto, and FakeLink ------------------------------


@dataclass
class LinkSide:
    link: ports.Link
    base: str  # the device's topics start here
    heard: Callable[[str, str], list[str]]  # payloads on a topic, once the last one arrived
    retained: Callable[[str], str | None]  # what a new subscriber is given as retained
    drop: Callable[[], None]  # the connection ends


@pytest.fixture(params=["fake", "real"])
def link(request: pytest.FixtureRequest, device_id: str) -> Iterator[LinkSide]:
    if request.param == "fake":
        fake = FakeLink()

        def fake_retained(topic: str) -> str | None:
            payload, retained = fake.last_retained(topic)
            return payload if retained else None

        yield LinkSide(
            fake,
            "sipagent/porch",
            lambda topic, last: [p for t, p, _ in fake.published if t == topic],
            fake_retained,
            lambda: setattr(fake, "connected", False),
        )
        return
    broker: Mosquitto = request.getfixturevalue("mosquitto")
    probes: Callable[..., MqttProbe] = request.getfixturevalue("probe_factory")
    config = parse_config(
        f'[device]\nid = "{device_id}"\n[sip]\nuri = "sip:t@127.0.0.1"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    ).mqtt
    assert config is not None
    everything = probes(f"{config.base_topic}/#")
    real = MqttLink(config, Topics.of(config), Inbox(), PayloadBounds(1000, 16384))
    real.start()
    wait_until(lambda: real.connected, 10, f"the link connected to {broker.port}")

    def heard(topic: str, last: str) -> list[str]:
        everything.wait_for(topic, lambda m: m.text == last, consume=False)
        return [m.text for m in everything.messages(topic)]

    def retained(topic: str) -> str | None:
        message = probes(topic).wait_for(topic)
        return message.text if message.retain else None

    def drop() -> None:
        real.stop()
        wait_until(lambda: not real.connected, 10, "the link disconnected")

    yield LinkSide(real, config.base_topic, heard, retained, drop)
    real.stop()


def test_events_go_out_on_the_current_connection_each_with_its_id(link: LinkSide) -> None:
    mqtt, topic = link.link, f"{link.base}/event"
    assert mqtt.connected and mqtt.session >= 1
    assert mqtt.broker.rpartition(":")[2].isdigit()  # host:port, for status and the log
    first = mqtt.publish_event(topic, b"one")
    second = mqtt.publish_event(topic, "two", session=mqtt.session)
    assert isinstance(first, int) and isinstance(second, int) and first != second
    # An event of an earlier connection is not sent on this one (the outbox sends it again).
    assert mqtt.publish_event(topic, b"stale", session=mqtt.session - 1) is None
    assert mqtt.publish_event(topic, b"three") is not None
    assert link.heard(topic, "three") == ["one", "two", "three"]


def test_retained_state_reaches_a_later_subscriber(link: LinkSide) -> None:
    topic = f"{link.base}/output/gate/state"
    link.link.publish(topic, "ON", retain=True)
    assert link.heard(topic, "ON") == ["ON"]
    assert link.retained(topic) == "ON"


def test_nothing_goes_out_once_the_connection_is_gone(link: LinkSide) -> None:
    link.drop()
    assert not link.link.connected
    assert link.link.publish_event(f"{link.base}/event", b"late") is None  # the outbox keeps it
    link.link.publish(f"{link.base}/output/gate/state", "OFF", retain=True)  # said on connect
