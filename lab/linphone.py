"""Linphone 5.1's console client (Debian `linphone-cli`, `linphonec`) as a chat user.

Driven over stdin (`chat <uri> <text>`); what it received is read from its stdout
("Message received from sip:…: text"), and the state of what it sent (Delivered,
DeliveredToUser, Displayed) from its debug log. What makes it send CPIM with delivery
requests, and what keeps it off the network, is in `_linphonerc` (README "Chat clients").
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path
from types import TracebackType

from .childproc import _with_parent_death_signal
from .kamailio import Kamailio
from .ports import free_port
from .waiting import log_tail, require_binary, wait_until

_RECEIVED = re.compile(r"Message received from (\S+): (.*)")
_STATE = re.compile(r"Chat message \S+ of chat room .* : moving from (\w+) to (\w+)")


def _linphonerc(server: Kamailio, user: str, port: int, cpim: bool) -> str:
    return f"""[sip]
sip_port={port}
sip_tcp_port=-1
sip_tls_port=-1
default_proxy=0
# GRUU off: against a Kamailio without it, requests to us would go to port 5060.
supported=replaces
register_only_when_network_is_up=0
# Send and ask for every notice (the default, written out): delivered, displayed, typing.
im_notif_policy=all
[proxy_default_values]
cpim_in_basic_chat_rooms_enabled={int(cpim)}
[auth_info_0]
username={user}
passwd={server.users[user]}
realm={server.domain}
domain={server.domain}
[proxy_0]
reg_proxy={server.registrar_uri}
reg_route={server.proxy_uri}
reg_identity={server.aor(user)}
reg_expires=300
reg_sendregister=1
publish=0
# Chat messages wrapped in CPIM, with IMDN requests in its headers.
cpim_in_basic_chat_rooms_enabled={int(cpim)}
"""


class Linphonec:
    """One linphonec registered as `user` at `server`, everything under `workdir`."""

    def __init__(self, server: Kamailio, user: str, workdir: Path, *, cpim: bool = True) -> None:
        binary = require_binary("linphonec", "the Debian package linphone-cli")
        self.workdir = workdir
        # A fresh HOME: linphonec keeps chat rooms in a database there, and a chat room
        # made before CPIM was turned on stays without it.
        home = workdir / "home"
        (home / ".local/share/linphone").mkdir(parents=True, exist_ok=True)
        rc = workdir / "linphonerc"
        rc.write_text(_linphonerc(server, user, free_port(), cpim))
        self.log = workdir / "linphone.log"
        self.out = workdir / "linphonec.out"
        self.received: list[tuple[str, str]] = []
        self._lines: list[str] = []
        self._lock = threading.Lock()
        env = {**os.environ, "HOME": str(home)}
        argv = [binary, "-c", str(rc), "-d", "6", "-l", str(self.log)]
        self.proc = subprocess.Popen(
            _with_parent_death_signal(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )
        self._reader = threading.Thread(target=self._read, name="linphonec", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.out.open("ab") as copy:
            for raw in self.proc.stdout:
                copy.write(raw)
                copy.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self._lines.append(line)
                    match = _RECEIVED.search(line)
                    if match:
                        self.received.append((match.group(1), match.group(2)))

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_registered(self, timeout: float = 20.0) -> None:
        wait_until(
            lambda: "to [LinphoneRegistrationOk]" in self._log_text(),
            timeout,
            f"linphonec to register; {self._tail()}",
        )

    def chat(self, to: str, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"chat {to} {text}\n".encode())
        self.proc.stdin.flush()

    def wait_received(self, predicate: str, timeout: float = 20.0) -> tuple[str, str]:
        """The first received message whose text starts with `predicate`."""

        def find() -> tuple[str, str] | None:
            with self._lock:
                return next((m for m in self.received if m[1].startswith(predicate)), None)

        return wait_until(find, timeout, f"linphonec to receive {predicate!r}; {self._tail()}")

    def states(self) -> list[str]:
        """Every state its sent messages moved to, in order."""
        return [m.group(2) for m in _STATE.finditer(self._log_text())]

    def wait_state(self, state: str, count: int = 1, timeout: float = 20.0) -> None:
        wait_until(
            lambda: self.states().count(state) >= count,
            timeout,
            f"{count} message(s) of linphonec to be {state} (states: {self.states()})",
        )

    def _tail(self) -> str:
        return f"stdout:\n{log_tail(self.out)}"

    def close(self) -> int:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return self.proc.returncode

    def __enter__(self) -> Linphonec:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
