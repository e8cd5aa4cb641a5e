"""A NOTIFY_SOCKET listener: what systemd would receive from a Type=notify service."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from .waiting import wait_until


class NotifyListener:
    """Binds a unix datagram socket and records every sd_notify message with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True, name="notify")
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def times(self, key: str, value: str | None = None) -> list[float]:
        return [t for t, f in self.messages if key in f and (value is None or f[key] == value)]

    def wait_for(self, key: str, value: str | None = None, timeout: float = 10.0) -> float:
        """Arrival time of the first message carrying `key` (= `value`)."""
        return wait_until(
            lambda: (self.times(key, value) or [None])[0],
            timeout,
            f"sd_notify {key}{'=' + value if value else ''} (got {self.statuses()})",
        )

    def wait_for_status(self, fragment: str, timeout: float = 10.0) -> float:
        """Arrival time of the first STATUS= that contains `fragment`."""
        return wait_until(
            lambda: next((t for t, f in self.messages if fragment in f.get("STATUS", "")), None),
            timeout,
            f"STATUS containing {fragment!r} (got {self.statuses()[-5:]})",
        )

    def statuses(self) -> list[str]:
        return [f.get("STATUS", "") for _, f in self.messages if "STATUS" in f]

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._thread.join(timeout=2)
