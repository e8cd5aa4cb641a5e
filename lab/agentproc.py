"""The agent under test, in its own process (lab/agent_main.py), with its notify socket."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .notify import NotifyListener
from .waiting import log_tail, wait_until

REPO = Path(__file__).resolve().parents[1]  # the checkout the lab belongs to
AGENT_MAIN = Path(__file__).with_name("agent_main.py")


class AgentProcess:
    """Starts the agent on a config text; reads its pins; stops it by SIGTERM or by request."""

    def __init__(
        self,
        workdir: Path,
        config_text: str,
        *,
        watchdog_usec: int | None = None,
        extra_env: dict[str, str] | None = None,
        netns: str | None = None,
    ) -> None:
        """``netns``: run the agent inside that network namespace (see lab.netns)."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "agent.toml"
        self.config_path.write_text(config_text)
        self.log = workdir / "agent.log"
        self.notify = NotifyListener(workdir / "notify.sock")
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        # As systemd's StateDirectory= would: the outbox lives in the test's own directory.
        env["STATE_DIRECTORY"] = str(workdir)
        # ... and RuntimeDirectory=: the status socket (agent.adapters.status_socket) lives there.
        env["RUNTIME_DIRECTORY"] = str(workdir)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.update(extra_env or {})
        self.env = env
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        prefix = ["ip", "netns", "exec", netns] if netns else []
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, str(AGENT_MAIN), str(self.config_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=workdir,
            )
        self._reader = threading.Thread(target=self._read, daemon=True, name="agent-out")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def _send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def _wait_event(self, what: str, match: dict[str, Any], after: int, timeout: float) -> dict:
        def find() -> dict[str, Any] | None:
            with self._lock:
                for ev in self.events[after:]:
                    if all(ev.get(k) == v for k, v in match.items()):
                        return ev
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"agent exited while waiting for {what}:\n{self.log_tail()}")
            return None

        return wait_until(find, timeout, f"{what}; agent log:\n{self.log_tail()}")

    def pin(self, number: int, timeout: float = 5.0) -> bool:
        """The current state of a mock pin inside the agent (True = high)."""
        return bool(self.pin_report(number, timeout)["state"])

    def pin_report(self, number: int, timeout: float = 5.0) -> dict[str, Any]:
        """{"state": bool, "value": level, "changed_at": time.monotonic() of the last change}."""
        after = len(self.events)
        self._send(op="pin", pin=number)
        return self._wait_event(f"pin {number}", {"event": "pin", "pin": number}, after, timeout)

    def pin_value(self, number: int, timeout: float = 5.0) -> float:
        """The level of a mock pin inside the agent: 0.0..1.0 (PWM), else 0.0 or 1.0."""
        return float(self.pin_report(number, timeout)["value"])

    def pin_history(self, number: int, timeout: float = 5.0) -> list[tuple[float, float]]:
        """Every change of a mock pin: (seconds since the previous change, level), oldest first.

        MockPin records these itself, so a short pulse cannot slip between two polls.
        """
        after = len(self.events)
        self._send(op="history", pin=number)
        event = self._wait_event(
            f"history of pin {number}", {"event": "history", "pin": number}, after, timeout
        )
        return [(float(t), float(v)) for t, v in event["states"]]

    def drive(self, number: int, state: bool, timeout: float = 5.0) -> None:
        after = len(self.events)
        self._send(op="drive", pin=number, state=state)
        self._wait_event(f"drive {number}", {"event": "driven", "pin": number}, after, timeout)

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Arrival time of READY=1; fails at once, with the log, if the agent exits first."""

        def ready() -> float | None:
            times = self.notify.times("READY", "1")
            if times:
                return times[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited before READY=1:\n{self.log_tail()}")
            return None

        return wait_until(ready, timeout, f"READY=1; agent log:\n{self.log_tail()}")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL: no shutdown at all, as after a crash or a power-less watchdog reset."""
        self.proc.kill()
        self.proc.wait(timeout)

    @property
    def status_socket(self) -> Path:
        return Path(self.env["RUNTIME_DIRECTORY"]) / "status.sock"

    def hangup(self) -> None:
        """SIGHUP, as `systemctl reload` sends it: reload the config."""
        self.proc.send_signal(signal.SIGHUP)

    @property
    def outbox_path(self) -> Path:
        """The agent's outbox database (STATE_DIRECTORY is the workdir unless overridden)."""
        return Path(self.env["STATE_DIRECTORY"]) / "outbox.db"

    def wait_exit(self, timeout: float = 10.0) -> dict[str, Any]:
        """The exit report: {"code": …, "pins": {"GPIO17": False, …}}."""
        report = self._wait_event("agent exit", {"event": "exit"}, 0, timeout)
        self.proc.wait(timeout)
        return report

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log, lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send(op="stop")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        self.notify.close()


def wait_status(agent: AgentProcess, pattern: str, timeout: float, after: int = 0) -> str:
    """The first STATUS= line (from index `after`) that matches `pattern`; fails at once, with
    the log, if the agent exits first."""

    def found() -> str | None:
        for line in agent.notify.statuses()[after:]:
            if re.search(pattern, line):
                return line
        if agent.proc.poll() is not None:
            raise AssertionError(f"agent exited:\n{agent.log_tail()}")
        return None

    return wait_until(
        found,
        timeout,
        f"STATUS matching {pattern!r} (got {agent.notify.statuses()[after:]}); "
        f"log:\n{agent.log_tail()}",
    )
