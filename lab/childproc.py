"""A server run as a child process of the tests, in its own process group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

from .waiting import log_tail, wait_until


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    """Make the server get SIGTERM when the test process dies without cleaning up.

    A killed or timed-out pytest run would otherwise leave servers behind holding their
    ports. setpriv (util-linux) sets the signal and execs the server, so the pid is the
    server's. Linux ties it to the *thread* that started the child: start servers from the
    main thread or a thread that lives as long as they do.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


class ChildProcess:
    """One run of ``argv`` with stdout and stderr appended to ``log``.

    It gets a session of its own so that stopping it can also reach the workers it forked
    (Kamailio's children) without touching any other process.
    """

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.alive():
            raise AssertionError(f"{self.name} is already running (pid {self.pid})")
        # Appending keeps the log of a run before a restart: a test failing after a restart
        # often needs both.
        with self.log.open("ab") as out:
            out.write(f"==== starting: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                _with_parent_death_signal(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self.proc is None:
            raise AssertionError(f"{self.name} was never started")
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(
                f"{self.name} exited with code {code}; last lines of {self.log}:\n"
                + log_tail(self.log)
            )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the whole group. Returns the code."""
        proc = self.proc
        if proc is None:
            return None
        pgid = proc.pid  # the session leader's pid is the group id
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout)
        # Workers normally exit with their parent; give them a moment, then make sure.
        try:
            wait_until(lambda: not _group_alive(pgid), timeout, f"{self.name} workers to exit")
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        return proc.returncode


class LabServer:
    """A server of the lab run as one child process: started and waited for, stopped, restarted.

    A subclass writes its files and returns its command line in `_command()`, says when it
    answers in `_answers()`, and sets `name`, `workdir`, `log`, `netns` and `start_timeout`.
    """

    name: str
    workdir: Path
    log: Path
    netns: str | None
    start_timeout: float
    _child: ChildProcess | None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _answers(self) -> bool:
        raise NotImplementedError

    def _waiting_for(self) -> str:
        return f"{self.name} to answer"

    def start(self, timeout: float | None = None) -> None:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self._child = ChildProcess(self.name, [*prefix, *self._command()], self.log, self.workdir)
        self._child.start()
        try:
            wait_until(self._answers, timeout or self.start_timeout, self._waiting_for())
        except AssertionError:
            try:
                self._child.check_alive()  # a crash explains more than a timeout
            finally:
                self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        if self._child is not None:
            self._child.stop(timeout)

    def restart(self, timeout: float | None = None) -> None:
        """Stop and start again with the same port and settings."""
        self.stop()
        self.start(timeout)

    def running(self) -> bool:
        return self._child is not None and self._child.alive()

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
