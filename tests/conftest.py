"""What every test folder shares: the `lab` mark for tests that use a real server.

Nothing here imports the lab or any outside library, so that the pure suite (tests/pure) runs on
a bare Python. The lab's fixtures (real Kamailio, Mosquitto, peers, agent processes) are loaded
by tests/adapters/conftest.py and tests/system/conftest.py (lab.fixtures).
"""

from __future__ import annotations

import pytest

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
