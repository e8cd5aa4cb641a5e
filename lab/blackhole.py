"""A network namespace whose DNS server never answers, and which tells what it was asked.

    with BlackholeDns() as dns:
        agent = AgentProcess(..., netns=dns.netns)    # resolves names against the black hole
        ...
        assert dns.queries() == []                     # nobody looked any name up

`ip netns exec` mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf, so everything
started in the namespace asks 127.0.0.53, where a socket of this test reads each query and
answers nothing: a lookup takes glibc's whole timeout (5 s, twice), as a dead DNS server or a
name the attacker's own server stalls would. Root only (namespaces), as CI runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from types import TracebackType

from .netns import require_root, socket_in
from .waiting import require_binary

RESOLVER = "127.0.0.53"


def query_name(packet: bytes) -> str:
    """The name asked for in a DNS query (the first question), or "" if unreadable."""
    labels, i = [], 12
    while i < len(packet) and packet[i]:
        size = packet[i]
        labels.append(packet[i + 1 : i + 1 + size].decode("ascii", "replace"))
        i += 1 + size
    return ".".join(labels)


class BlackholeDns:
    def __init__(self) -> None:
        require_root()
        self._ip = require_binary("ip", "the Debian package iproute2")
        self.netns = f"sabh{os.getpid() % 10000}{secrets.token_hex(2)}"
        self._etc = Path("/etc/netns") / self.netns
        self._names: list[str] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def __enter__(self) -> BlackholeDns:
        subprocess.run([self._ip, "netns", "add", self.netns], check=True, capture_output=True)
        subprocess.run(
            [self._ip, "-n", self.netns, "link", "set", "lo", "up"], check=True, capture_output=True
        )
        self._etc.mkdir(parents=True, exist_ok=True)
        (self._etc / "resolv.conf").write_text(
            f"nameserver {RESOLVER}\noptions timeout:5 attempts:2\n"
        )
        # pjlib looks this machine's own name up in libInit: as Debian's /etc/hosts does,
        # answer that locally (else every start waits for the black hole).
        (self._etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n")
        self._sock = socket_in(self.netns, socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((RESOLVER, 53))
        threading.Thread(target=self._listen, daemon=True, name="blackhole-dns").start()
        return self

    def _listen(self) -> None:
        assert self._sock is not None
        while True:
            try:
                packet = self._sock.recv(4096)
            except OSError:
                return
            with self._lock:
                self._names.append(query_name(packet))

    def queries(self) -> list[str]:
        """Every name asked for so far."""
        with self._lock:
            return list(self._names)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sock is not None:
            self._sock.close()
        subprocess.run([self._ip, "netns", "del", self.netns], capture_output=True, check=False)
        shutil.rmtree(self._etc, ignore_errors=True)
