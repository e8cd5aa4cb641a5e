"""SIP on raw sockets, as an attacker (or a careless client) writes it: UDP and TCP.

`request()` builds a request with every header overridable, removable or malformed;
`UdpPeer` and `TcpPeer` send bytes and record what comes back (answering the agent's own
requests with 200, or not, to watch its retransmissions). `Received` reads one SIP message
(scripts/benchlib/sipclient.py uses it too). Floods stay on loopback, or in a namespace the
test made (`netns`), and every call is bounded in count and time.
"""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .netns import socket_in

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when it arrived
    text: str

    @property
    def is_request(self) -> bool:
        return not self.text.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return self.text.split(" ", 1)[0] if self.is_request else ""

    @property
    def status(self) -> int:
        if self.is_request:
            return 0
        parts = self.text.split(" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def header(self, name: str) -> str:
        match = re.search(rf"^{name}:\s*(.*?)\r$", self.text, re.M | re.I)
        return match.group(1) if match else ""

    @property
    def body(self) -> str:
        return self.text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in self.text else ""


def request(
    method: str,
    to: str,
    *,
    local: tuple[str, int],
    proto: str = "UDP",
    sender: str = "sip:stranger@127.0.0.1",
    call_id: str | None = None,
    body: str | bytes = "",
    content_type: str | None = None,
    headers: Mapping[str, str | None] | None = None,
    extra: Iterable[str] = (),
    content_length: int | None = None,
) -> bytes:
    """A request to `to`. `headers` replaces a standard header's value (None removes it);
    `extra` lines are added as written; `content_length` may lie."""
    host, port = local
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    payload = body.encode() if isinstance(body, str) else body
    standard: dict[str, str | None] = {
        "Via": f"SIP/2.0/{proto} {host}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
        "Max-Forwards": "70",
        "From": f"<{sender}>;tag={secrets.token_hex(4)}",
        "To": f"<{to}>",
        "Call-ID": call_id or f"{secrets.token_hex(8)}@{host}",
        "CSeq": f"1 {method}",
        "Contact": f"<sip:{sender.split(':', 1)[1].split('@')[0]}@{host}:{port}>",
        "Content-Type": content_type,
        "Content-Length": str(len(payload) if content_length is None else content_length),
    }
    standard.update(headers or {})
    lines = [f"{method} {to} SIP/2.0"]
    lines += [f"{name}: {value}" for name, value in standard.items() if value is not None]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def raw_message(
    agent_port: int, sock: socket.socket, body: bytes, from_uri: str = "sip:owner@127.0.0.1"
) -> None:
    """A MESSAGE from the socket's own address, with any From (as a forger sends it)."""
    host, port = sock.getsockname()
    call_id = uuid.uuid4().hex
    head = (
        f"MESSAGE sip:agent@127.0.0.1:{agent_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{call_id[:16]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{from_uri}>;tag={call_id[:8]}\r\n"
        f"To: <sip:agent@127.0.0.1:{agent_port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendto(head.encode() + body, ("127.0.0.1", agent_port))


def answer_ok(received: Received) -> bytes:
    """A 200 OK for a request the agent sent us."""
    vias = re.findall(r"^Via:.*?\r\n", received.text, re.M | re.I)
    copied = "".join(f"{h}: {received.header(h)}\r\n" for h in ("From", "To", "Call-ID", "CSeq"))
    return f"SIP/2.0 200 OK\r\n{''.join(vias)}{copied}Content-Length: 0\r\n\r\n".encode()


class UdpPeer:
    """One UDP socket at `host` (any free port); what arrives is recorded by a thread.

    With `answer` the agent's own requests (replies, NOTIFYs) get a 200 at once; without,
    they go unanswered and the agent retransmits them, as to a victim that never answers.
    """

    def __init__(self, host: str = "127.0.0.1", *, answer: bool = True, netns: str | None = None):
        self.sock = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, 0))
        self.address: tuple[str, int] = self.sock.getsockname()
        self.answer = answer
        self.received: list[Received] = []
        self.bytes_in = 0
        self.sent = self.bytes_out = 0
        self._lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True, name="udp-peer")
        self._reader.start()

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(data, to)
        self.sent += 1
        self.bytes_out += len(data)

    def _read(self) -> None:
        while not self._closed:
            try:
                data, source = self.sock.recvfrom(65535)
            except OSError:
                return
            got = Received(time.monotonic(), data.decode("utf-8", "replace"))
            with self._lock:
                self.received.append(got)
                self.bytes_in += len(data)
            if self.answer and got.is_request and got.method != "ACK":
                try:
                    self.sock.sendto(answer_ok(got), source)
                except OSError:
                    return  # closed meanwhile

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def responses(self, call_id: str) -> list[Received]:
        return [r for r in self.snapshot() if not r.is_request and r.header("Call-ID") == call_id]

    def requests(self, method: str = "MESSAGE") -> list[Received]:
        return [r for r in self.snapshot() if r.method == method]

    def close(self) -> None:
        self._closed = True
        self.sock.close()


class TcpPeer:
    """One TCP connection from `host` to `to`; what arrives is read on demand."""

    def __init__(self, to: tuple[str, int], host: str = "127.0.0.1", timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(to)
        self.address: tuple[str, int] = self.sock.getsockname()
        self._buffer = b""

    def send(
        self,
        data: bytes,
        *,
        chunk: int | None = None,
        pause: threading.Event | None = None,
        pause_s: float = 0.0,
    ) -> None:
        """Send `data`, all at once or `chunk` bytes at a time with `pause_s` between."""
        if chunk is None:
            self.sock.sendall(data)
            return
        waiter = pause or threading.Event()
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i : i + chunk])
            waiter.wait(pause_s)

    def read_response(self, timeout: float = 5.0) -> Received | None:
        """The next complete message on the connection, or None (timeout or closed)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65535)
            except (TimeoutError, OSError):
                return None
            if not chunk:
                return None
            self._buffer += chunk
        head, rest = self._buffer.split(b"\r\n\r\n", 1)
        length = (
            int(m.group(1))
            if (m := re.search(rb"(?im)^(?:content-length|l):\s*(\d+)", head))
            else 0
        )
        body, self._buffer = rest[:length], rest[length:]
        return Received(time.monotonic(), (head + b"\r\n\r\n" + body).decode("utf-8", "replace"))

    def closed_by_peer(self, timeout: float) -> bool:
        """True once the agent closed the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65535) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()
