"""Host names looked up on a thread of their own, never on the owner thread.

Routed mode trusts the registrar's and proxy's addresses (agent.core.trust); when the config
names them by host name, this finds their addresses at start and again after
registrations, while the owner loop keeps answering. Results are taken on the owner thread.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)


class HostLookup:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._results: queue.SimpleQueue[tuple[str, frozenset[str]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self, hosts: Iterable[str]) -> bool:
        """Look `hosts` up in the background; False if a lookup is still running."""
        names = sorted(set(hosts))
        if not names or (self._thread is not None and self._thread.is_alive()):
            return False
        self._thread = threading.Thread(
            target=self._run, args=(names,), daemon=True, name="host-lookup"
        )
        self._thread.start()
        return True

    def take(self) -> list[tuple[str, frozenset[str]]]:
        """What was found since the last call (owner thread)."""
        found = []
        while True:
            try:
                found.append(self._results.get_nowait())
            except queue.Empty:
                return found

    def _run(self, names: list[str]) -> None:
        for name in names:
            try:
                infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_UDP)
            except (OSError, UnicodeError) as err:
                log.warning("cannot look up %s (the proxy's addresses): %s", name, err)
                continue
            self._results.put((name, frozenset(str(info[4][0]) for info in infos)))
        self._wake()
