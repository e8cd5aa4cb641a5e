"""baresip 1.0 (Debian baresip-core) as a presence watcher, read from its stdio output.

Its `presence` module subscribes to every contact marked `;presence=p2p` and its console
prints each change: `<sip:agent@127.0.0.1:5071> changed status from Online to Busy`. baresip
knows the PIDF/RPID states unknown, online, offline, busy and away, and shows no note.
"""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

from .ports import free_port
from .waiting import log_tail, require_binary, wait_until

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CHANGE = re.compile(r"<(?P<uri>[^>]+)> changed status from (?P<old>\w+) to (?P<new>\w+)")

CONFIG = """\
poll_method epoll
sip_listen 127.0.0.1:{port}
module_path /usr/lib/baresip/modules
module stdio.so
module_app account.so
module_app contact.so
module_app presence.so
module_app menu.so
audio_player none
audio_source none
"""


class BaresipWatcher:
    """baresip as `uri` (serverless) watching `contacts`; records each status change."""

    def __init__(self, workdir: Path, uri: str, contacts: list[str]) -> None:
        binary = require_binary("baresip", "the Debian package baresip-core")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").write_text(CONFIG.format(port=free_port()))
        (workdir / "accounts").write_text(f"<{uri}>;regint=0\n")
        (workdir / "contacts").write_text("".join(f"<{c}>;presence=p2p\n" for c in contacts))
        self.log = workdir / "baresip.log"
        self.log.touch()
        self.changes: list[tuple[str, str, str]] = []  # (uri, old, new), in order
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", binary, "-f", str(workdir)],
            stdin=subprocess.PIPE,  # its UI reads keys: keep it waiting, not at EOF
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name="baresip")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                match = _CHANGE.search(_ANSI.sub("", raw.decode(errors="replace")))
                if match:
                    with self._lock:
                        self.changes.append((match["uri"], match["old"], match["new"]))

    def wait_status(self, uri: str, status: str, timeout: float = 10.0) -> None:
        """Wait until baresip has shown `uri` changing to `status` (e.g. "Busy")."""

        def seen() -> bool:
            with self._lock:
                return any(u == uri and new == status for u, _, new in self.changes)

        wait_until(seen, timeout, f"baresip to show {uri} {status}; log:\n{log_tail(self.log)}")

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode
