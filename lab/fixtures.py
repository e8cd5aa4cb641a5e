"""pytest fixtures of the lab.

The conftest.py of each test folder that uses them imports them all
(``from lab.fixtures import *``); the pure suite does not, and runs without the lab's servers.

- ``lab_dir``: a directory for the whole session (logs of every server and peer end up there;
  pytest keeps the last few runs under its basetemp).
- ``kamailio`` (session): DEFAULT_USERS plus ``watcher1``..``watcher40`` (password
  ``watcherNpw``) for tests with many watchers. A test that must stop or restart Kamailio
  uses ``kamailio_factory`` for a private one instead.
- ``mosquitto`` (session), ``mosquitto_factory`` likewise.
- ``peer_factory`` (function): ``peer_factory("owner")`` starts a peer registered as
  ``sip:owner@<domain>`` through the session Kamailio with the user's password; keyword
  arguments override (see ``PeerFactory.__call__``). All peers are closed at teardown, and a
  peer that did not shut down cleanly (exit code != 0) fails the test. Closing takes a few
  ms, or about 1 s for a peer started with ``publish=True`` (see peer_main.App.shutdown).
- ``mqtt_probe``: an MqttProbe subscribed to ``#`` on the session broker.
- ``agent_factory``: agents in their own processes, stopped at the end of the test.
- ``device_id``: a device id of the test's own; ``probe_factory``: MQTT probes on the session
  broker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .agentproc import AgentProcess
from .kamailio import DEFAULT_USERS, Kamailio, numbered_users
from .mosquitto import Mosquitto
from .mqttprobe import MqttProbe
from .peer import Peer

SESSION_USERS = {**DEFAULT_USERS, **numbered_users("watcher", 40)}


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def kamailio(lab_dir: Path) -> Iterator[Kamailio]:
    with Kamailio(lab_dir / "kamailio", users=SESSION_USERS) as server:
        yield server


@pytest.fixture(scope="session")
def mosquitto(lab_dir: Path) -> Iterator[Mosquitto]:
    with Mosquitto(lab_dir / "mosquitto") as broker:
        yield broker


S = TypeVar("S", Kamailio, Mosquitto)


def _private_servers(kind: type[S], workdir: Path) -> Iterator[Callable[..., S]]:
    """A factory of started servers of `kind`, each in a directory of its own; all stopped
    when the generator is closed (at the fixture's teardown)."""
    started: list[S] = []

    def factory(**kwargs: Any) -> S:
        server = kind(workdir / f"{kind.__name__.lower()}{len(started)}", **kwargs)
        started.append(server)
        server.start()
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[Callable[..., Kamailio]]:
    """Start private Kamailios (``factory(users=..., domain=...)``); stopped at teardown."""
    yield from _private_servers(Kamailio, tmp_path)


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start private brokers (``factory(port=None)``); stopped at teardown."""
    yield from _private_servers(Mosquitto, tmp_path)


class PeerFactory:
    """Starts peers against a Kamailio (the session one unless ``server=`` says otherwise)."""

    def __init__(self, request: pytest.FixtureRequest, workdir: Path) -> None:
        self._request = request
        self.workdir = workdir
        self.peers: list[Peer] = []

    def __call__(
        self,
        user: str | None = None,
        *,
        server: Kamailio | None = None,
        register: bool = True,
        wait_registered: bool = True,
        **kwargs: Any,
    ) -> Peer:
        """A peer for ``user``: registered (and waited for) through ``server``.

        ``user=None`` with an explicit ``uri=`` starts a peer with just the given options
        (e.g. direct mode: no registrar, no proxy). Other keyword arguments go to Peer.start
        and override the defaults (uri, registrar, proxy, username, password, transport,
        listen, publish, ...).
        """
        options: dict[str, Any] = {"workdir": self.workdir}
        if user is not None:
            server = server or self._request.getfixturevalue("kamailio")
            assert server is not None
            options.update(
                uri=server.aor(user),
                proxy=server.proxy_uri,
                username=user,
                password=server.users.get(user, ""),
            )
            if register:
                options["registrar"] = server.registrar_uri
        options.update(kwargs)
        peer = Peer.start(**options)
        self.peers.append(peer)
        if options.get("registrar") and wait_registered:
            peer.wait_registered()
        return peer

    def close_all(self) -> list[str]:
        problems = []
        # Each peer needs about 1 s to quit (pjsua's libDestroy): let them do it in parallel.
        for peer in self.peers:
            peer.request_quit()
        for peer in self.peers:
            code = peer.close()
            if code != 0:
                problems.append(f"peer {peer.name} exited with {code}; see {peer.log}")
        self.peers.clear()
        return problems


@pytest.fixture
def peer_factory(request: pytest.FixtureRequest, lab_dir: Path) -> Iterator[PeerFactory]:
    # Parametrized test names contain brackets and slashes; keep the directory name plain.
    name = re.sub(r"[^\w.-]", "_", request.node.name)[:80]
    factory = PeerFactory(request, lab_dir / "peers" / name)
    yield factory
    problems = factory.close_all()
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def mqtt_probe(mosquitto: Mosquitto) -> Iterator[MqttProbe]:
    """A probe subscribed to ``#`` on the session broker."""
    probe = MqttProbe(mosquitto.host, mosquitto.port)
    yield probe
    probe.close()


AgentFactory = Callable[..., AgentProcess]


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[AgentFactory]:
    """Start agents in their own processes; each is stopped at the end of the test."""
    agents: list[AgentProcess] = []

    def start(config_text: str, **kwargs: object) -> AgentProcess:
        agent = AgentProcess(tmp_path / f"agent{len(agents)}", config_text, **kwargs)  # type: ignore[arg-type]
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.close()


@pytest.fixture
def device_id(request: pytest.FixtureRequest) -> str:
    """A device id of this test's own: retained topics on the shared broker do not leak."""
    return f"t{abs(hash(request.node.nodeid)) % 10**8}"


@pytest.fixture
def probe_factory(mosquitto: Mosquitto) -> Iterator[Callable[..., MqttProbe]]:
    """MQTT probes on the session broker, closed at the end of the test."""
    probes: list[MqttProbe] = []

    def start(*topics: str, **kwargs: object) -> MqttProbe:
        probe = MqttProbe(mosquitto.host, mosquitto.port, topics=topics or ("#",), **kwargs)  # type: ignore[arg-type]
        probes.append(probe)
        return probe

    yield start
    for probe in probes:
        probe.close()
