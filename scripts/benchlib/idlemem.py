"""Idle memory of `sipagent run` on the example config, as the service would run it.

`examples/agent.toml` is pointed at the lab's Kamailio and Mosquitto (and mock pins, which
any machine has); everything else is the example as shipped: SIP registered with presence
published and a contact watched, MQTT with discovery, three outputs and one input, the
outbox. The agent runs as `sipagent run --config` under a NOTIFY_SOCKET, as under systemd.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.kamailio import Kamailio
from lab.mosquitto import Mosquitto
from lab.notify import NotifyListener

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "agent.toml"
# What the `sipagent` console script pip writes does (the unit's ExecStart runs it), rather
# than `python -m agent`, which would load runpy into the process as well.
CONSOLE_SCRIPT = "import sys; from agent.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class Memory:
    """One process's memory, MB: resident, its anonymous part, and PSS (shared split)."""

    rss: float
    anon: float
    pss: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in asdict(self).items()}

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("rss", "anon", "pss")


def memory_of(pid: int) -> Memory:
    status = _kb_fields(Path(f"/proc/{pid}/status"))
    rollup = _kb_fields(Path(f"/proc/{pid}/smaps_rollup"))
    return Memory(status["VmRSS"] / 1024, status["RssAnon"] / 1024, rollup["Pss"] / 1024)


def _kb_fields(path: Path) -> dict[str, int]:
    fields = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields


def example_config(kam: Kamailio, mq: Mosquitto, device_id: str = "idle") -> str:
    """examples/agent.toml, pointed at the lab's servers, with mock pins."""
    text = EXAMPLE.read_text()
    swaps = {
        "uri": f'"{kam.aor("agent")}"',
        "registrar": f'"{kam.registrar_uri}"',
        "proxy": f'"{kam.proxy_uri}"',
        "username": '"agent"',
        "password": f'"{kam.users["agent"]}"',
        "listen": '"127.0.0.1:0"',
        "host": f'"{mq.host}"',
        "port": str(mq.port),
        "pin_factory": '"mock"',
        "id": f'"{device_id}"',
        "client_id": f'"sipagent-{device_id}"',
        "base_topic": f'"sipagent/{device_id}"',
        "alice": f'"{kam.aor("owner")}"',
    }
    for key, value in swaps.items():
        text = re.sub(rf"(?m)^{key}\s*=\s*[^#\n]*", f"{key} = {value} ", text, count=1)
    return text.replace("pbx.example.org", kam.domain)


def compile_agent(python: str = sys.executable) -> None:
    """The agent's bytecode, written for `python`, as pip writes it when it installs the
    package: a service starts from bytecode. Without it (a fresh clone, or
    PYTHONDONTWRITEBYTECODE set) every start compiles the agent's 120 modules from source,
    and the compiler's leftovers cost 0.45 MB of anonymous memory for good."""
    subprocess.run(
        [python, "-m", "compileall", "-q", str(REPO / "agent")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


class ServiceRun:
    """`sipagent run --config PATH` in a process of its own, READY=1 awaited."""

    def __init__(self, workdir: Path, config_text: str, python: str = sys.executable) -> None:
        compile_agent(python)
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "agent.toml"
        config.write_text(config_text)
        self.notify = NotifyListener(workdir / "notify.sock")
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path)}
        env["STATE_DIRECTORY"] = str(workdir)
        env["PYTHONPATH"] = str(REPO)
        self.log = workdir / "agent.log"
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [python, "-c", CONSOLE_SCRIPT, "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=workdir,
            )

    def wait_ready(self, timeout: float = 30.0) -> float:
        return self.notify.wait_for("READY", "1", timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.notify.close()
