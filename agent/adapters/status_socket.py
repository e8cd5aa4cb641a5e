"""`sipagent status` talks to the running agent over a unix socket in its runtime directory.

Who can connect: the socket is mode 0600 in the service's own RuntimeDirectory (0750,
user sipagent), so only the service user and root; the server also checks the peer's uid
(SO_PEERCRED) in case someone loosens the mode. What a client can do: ask for the status,
nothing else; the answer holds no secret. What a bad client cannot do: send more than
`MAX_REQUEST_BYTES`, hold the server past `CLIENT_TIMEOUT_S`, or block the owner loop: the
server's own thread reads the request, posts `StatusRequested` to the inbox and waits (at most
`ANSWER_TIMEOUT_S`) for the owner thread to fill in the answer. Clients are served one at a
time, so no number of them costs more than one thread and one pending request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping

from agent.core.events import Event, StatusRequested

log = logging.getLogger(__name__)

SOCKET_NAME = "status.sock"
MAX_REQUEST_BYTES = 256  # "status\n" is 7
MAX_ANSWER_BYTES = 1 << 20  # the client's bound on what it reads
CLIENT_TIMEOUT_S = 2.0  # a client that sends nothing is dropped after this
ANSWER_TIMEOUT_S = 5.0  # the owner loop answers within a turn; longer means it hangs
REQUESTS = ("status",)


class StatusUnavailable(Exception):
    """No running agent answered at the socket; the message says what to check."""


def server_path(env: Mapping[str, str] = os.environ) -> str | None:
    """Where the agent listens: systemd's RuntimeDirectory=, else the user's runtime dir."""
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return os.path.join(runtime, SOCKET_NAME)
    if xdg := env.get("XDG_RUNTIME_DIR"):
        return os.path.join(xdg, "sipagent", SOCKET_NAME)
    return None  # no private place for it: no status socket


def client_paths(env: Mapping[str, str] = os.environ) -> list[str]:
    """Where `sipagent status` looks, in order: the service's, then a demo run's."""
    paths = [f"/run/sipagent/{SOCKET_NAME}"]
    if (own := server_path(env)) is not None and own not in paths:
        paths.append(own)
    return paths


class StatusServer:
    def __init__(self, path: str, post: Callable[[Event], None]) -> None:
        self.path = path
        self._post = post
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Only this server's thread writes these; the status answer reads them.
        self.refused = 0  # connections from another uid
        self.bad = 0  # requests too long, too slow or unknown

    def start(self) -> bool:
        """Listen; False (and a log line) if the socket cannot be made, which is not fatal."""
        try:
            self._sock = _listen(self.path)
        except OSError as err:
            log.warning("status socket %s not available: %s", self.path, err)
            return False
        self._thread = threading.Thread(target=self._serve, name="status", daemon=True)
        self._thread.start()
        log.info("status socket at %s", self.path)
        return True

    def close(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self._sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        if self._thread is not None:
            self._thread.join(timeout=CLIENT_TIMEOUT_S + ANSWER_TIMEOUT_S)

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    self._answer(conn)
                except OSError as err:
                    log.debug("status client went away: %s", err)

    def _answer(self, conn: socket.socket) -> None:
        uid = _peer_uid(conn)
        if uid not in (0, os.getuid()):
            self.refused += 1
            log.warning("status socket: refused a client running as uid %s", uid)
            return
        conn.settimeout(CLIENT_TIMEOUT_S)
        request = _read_request(conn)
        if request not in REQUESTS:
            self.bad += 1
            shown = "too long, too slow or not one line" if request is None else repr(request[:40])
            _send(conn, {"error": f"unknown request {shown} (requests: {', '.join(REQUESTS)})"})
            return
        # Imported at the first request, not at start: most devices are never asked.
        from concurrent.futures import Future

        reply: Future[dict[str, object]] = Future()
        self._post(StatusRequested(reply))
        try:
            answer = reply.result(timeout=ANSWER_TIMEOUT_S)
        except TimeoutError:  # concurrent.futures.TimeoutError is TimeoutError
            answer = {"error": f"the agent did not answer within {ANSWER_TIMEOUT_S:g} s (hung?)"}
        _send(conn, answer)


def _listen(path: str) -> socket.socket:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.lexists(path):
        if _answers(path):
            raise OSError(f"another agent is listening at {path}")
        os.unlink(path)  # left behind by an agent that died
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # 0600 from the start: no moment where others could connect
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(4)
    return sock


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _read_request(conn: socket.socket) -> str | None:
    """One line of at most MAX_REQUEST_BYTES, or None."""
    data = b""
    while b"\n" not in data:
        try:
            chunk = conn.recv(MAX_REQUEST_BYTES + 1 - len(data))
        except TimeoutError:
            return None
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            return None
    line, _, _ = data.partition(b"\n")
    return line.decode("utf-8", errors="replace").strip().lower()


def _send(conn: socket.socket, answer: dict[str, object]) -> None:
    conn.sendall(json.dumps(answer).encode() + b"\n")


# -- the client (`sipagent status`) ----------------------------------------------------------


def ask(paths: list[str], request: str = "status", timeout_s: float = 10.0) -> dict[str, object]:
    """The answer of the agent at the first of `paths` that exists; StatusUnavailable if none."""
    for path in paths:
        try:
            data = _exchange(path, request, timeout_s)
        except FileNotFoundError:
            continue
        except PermissionError:
            # The socket, or the service's runtime directory, is not this user's.
            raise StatusUnavailable(
                f"{path}: permission denied (run as root or as the service's user)"
            ) from None
        except OSError as err:
            raise StatusUnavailable(f"{path}: {err.strerror or err}") from None
        break
    else:
        raise StatusUnavailable(
            f"no running sipagent: no socket at {' or '.join(paths)} "
            "(is the service running? systemctl status sipagent)"
        )
    try:
        answer = json.loads(data)
    except json.JSONDecodeError:
        raise StatusUnavailable(f"{path}: not a sipagent status answer") from None
    if not isinstance(answer, dict):
        raise StatusUnavailable(f"{path}: not a sipagent status answer")
    if "error" in answer:
        raise StatusUnavailable(f"{path}: {answer['error']}")
    return answer


def _exchange(path: str, request: str, timeout_s: float) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(path)
        sock.sendall(request.encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise OSError(f"answer longer than {MAX_ANSWER_BYTES} bytes")
        return data
