"""A fleet of agents on one Kamailio and one Mosquitto (issue 9, item 3).

Agent i registers as ``agent<i>@<domain>`` (password ``agent<i>pw``: the Kamailio needs
``numbered_users("agent", n)``), uses the base topic ``sipagent/<device_prefix><i>``, publishes
its presence through Kamailio (``presence = "publish"``: the presence server, not the agent,
answers the watchers) and is a member of ``group``. Agents start a few at a time, as a fleet
booting after a power cut would not all start in the same millisecond, and the 2-core lab
would otherwise spend seconds swapping between fifty Python interpreters importing pjsua2.

    with Fleet(workdir, kamailio, mosquitto, 5) as fleet:
        fleet.start()                      # all READY=1, online and registered on MQTT
        fleet.probe.publish(fleet.group_command, "on lamp")
        fleet.wait_results("on lamp")      # one result from each member
        fleet.stats()                      # RSS, PSS and CPU time of each agent from /proc
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .agentproc import AgentProcess
from .configs import agent_toml
from .kamailio import Kamailio
from .mosquitto import Mosquitto
from .mqttprobe import Message, MqttProbe
from .waiting import wait_until

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class ProcStats:
    """One process's memory (kB) and CPU time used so far (s), read from /proc."""

    pid: int
    rss_kb: int
    pss_kb: int
    cpu_s: float


def proc_stats(pid: int) -> ProcStats:
    """RSS from /proc/<pid>/statm, PSS from smaps_rollup (shared libraries counted once in
    total: RSS alone counts pjsua2's and Python's pages in every agent), CPU from stat."""
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    pss_kb = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss_kb = int(line.split()[1])
            break
    # The command name in field 2 may contain spaces: split after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return ProcStats(pid, rss_pages * PAGE_KB, pss_kb, (utime + stime) / CLOCK_TICKS)


class Fleet:
    def __init__(
        self,
        workdir: Path,
        kamailio: Kamailio,
        mosquitto: Mosquitto,
        count: int,
        *,
        group: str = "fleet",
        device_prefix: str = "fleet",
        parallel: int = 6,
        log_level: str = "warning",
        allow: Sequence[str] = ("watcher", "mqtt:local"),
    ) -> None:
        self.workdir = Path(workdir)
        self.kamailio = kamailio
        self.mosquitto = mosquitto
        self.count = count
        self.group = group
        self.device_prefix = device_prefix
        self.parallel = parallel
        self.log_level = log_level
        self.allow = tuple(allow)
        self.agents: list[AgentProcess] = []
        # Hears every member's state and results (and sends the group commands).
        self.probe = MqttProbe(
            mosquitto.host,
            mosquitto.port,
            topics=(
                "sipagent/+/availability",
                "sipagent/+/registration",
                "sipagent/+/command/result",
            ),
        )

    # --- names -----------------------------------------------------------------------------

    def user(self, i: int) -> str:
        return f"agent{i}"

    def aor(self, i: int) -> str:
        return self.kamailio.aor(self.user(i))

    def base(self, i: int) -> str:
        return f"sipagent/{self.device_prefix}{i}"

    @property
    def members(self) -> range:
        return range(1, self.count + 1)

    @property
    def group_command(self) -> str:
        return f"sipagent/group/{self.group}/command"

    # --- start -----------------------------------------------------------------------------

    def config(self, i: int) -> str:
        return agent_toml(
            self.kamailio,
            mosquitto=self.mosquitto,
            user=self.user(i),
            device_id=f"{self.device_prefix}{i}",
            allow=self.allow,
            presence="publish",
            log_level=self.log_level,
            # No Home Assistant discovery: fifty devices' configs would only be noise here.
            mqtt_options={"groups": [self.group], "discovery_prefix": ""},
        )

    def start(self, timeout_each: float = 30.0) -> None:
        """Start every agent, ``parallel`` at a time; return once all are READY=1 and have
        announced themselves on MQTT (availability online, registration registered)."""
        pending = list(self.members)
        while pending:
            wave, pending = pending[: self.parallel], pending[self.parallel :]
            started = [self._spawn(i) for i in wave]
            for i, agent in zip(wave, started, strict=True):
                agent.wait_ready(timeout_each)
                self.wait_announced(i, timeout_each)

    def _spawn(self, i: int) -> AgentProcess:
        agent = AgentProcess(self.workdir / f"agent{i}", self.config(i))
        self.agents.append(agent)
        return agent

    def agent(self, i: int) -> AgentProcess:
        return self.agents[i - 1]

    def wait_announced(self, i: int, timeout: float = 30.0) -> None:
        base = self.base(i)
        self.probe.wait_for(
            f"{base}/availability", lambda m: m.payload == b"online", timeout, consume=False
        )
        self.probe.wait_for(
            f"{base}/registration",
            lambda m: json.loads(m.payload).get("state") == "registered",
            timeout,
            consume=False,
        )

    # --- group commands --------------------------------------------------------------------

    def results(self, command: str) -> dict[int, list[Message]]:
        """Every member's results so far of the group command ``command``."""
        found: dict[int, list[Message]] = {i: [] for i in self.members}
        for i in self.members:
            for msg in self.probe.messages(f"{self.base(i)}/command/result"):
                record = msg.json()
                if record.get("command") == command and record.get("group") == self.group:
                    found[i].append(msg)
        return found

    def wait_results(self, command: str, timeout: float = 30.0) -> dict[int, Message]:
        """The first result of ``command`` from each member, once every member has one."""

        def all_answered() -> dict[int, Message] | None:
            found = self.results(command)
            if all(found.values()):
                return {i: msgs[0] for i, msgs in found.items()}
            return None

        try:
            return wait_until(all_answered, timeout, f"a result of {command!r} from every member")
        except AssertionError as err:
            missing = [i for i, msgs in self.results(command).items() if not msgs]
            raise AssertionError(f"{err}; no result from members {missing}") from None

    # --- measuring -------------------------------------------------------------------------

    def stats(self) -> list[ProcStats]:
        return [proc_stats(agent.proc.pid) for agent in self.agents]

    # --- stop ------------------------------------------------------------------------------

    def close(self) -> None:
        # Ask all to stop first, then wait: each needs about a second for pjsua's libDestroy.
        for agent in self.agents:
            if agent.proc.poll() is None:
                agent.terminate()
        for agent in self.agents:
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.proc.wait(15)
            agent.close()  # kills one that did not exit
        self.agents.clear()
        self.probe.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
