"""Fixtures shared by the tests. The real servers live in tests/lab (see lab/fixtures.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lab.agentproc import AgentProcess
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe

pytest_plugins = ["lab.fixtures"]

AgentFactory = Callable[..., AgentProcess]

# Fixtures that start a real server, an agent process or a network of namespaces. A test
# that uses one (directly or through another fixture) is marked `lab`: `pytest -m "not lab"`
# runs the rest, the pure and in-process tests, in seconds (scripts/mutation.py uses them).
LAB_FIXTURES = frozenset(
    {"lab_dir", "kamailio_factory", "mosquitto_factory", "agent_factory", "nat_lab", "container"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


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
