"""A minimal SIP user agent on a raw UDP socket, for timing the agent from outside.

The lab's pjsua2 peer polls every 10 ms and cannot say when a request left; this client
sends each MESSAGE with one `sendto` and timestamps it. It answers Kamailio's digest
challenge once and reuses the nonce (nc counting up), as Kamailio allows by default, so
every later MESSAGE crosses the proxy exactly once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import time
from dataclasses import dataclass, field

from lab.rawsip import Received

T1 = 0.5  # RFC 3261's first retransmission interval over UDP, seconds


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Challenge:
    header: str  # "Proxy-Authorization" or "Authorization"
    realm: str
    nonce: str
    qop: str | None
    nc: int = 0
    cnonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def answer(self, method: str, uri: str, user: str, password: str) -> str:
        self.nc += 1
        ha1 = _md5(f"{user}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{uri}")
        nc = f"{self.nc:08x}"
        if self.qop:
            response = _md5(f"{ha1}:{self.nonce}:{nc}:{self.cnonce}:auth:{ha2}")
            extra = f', qop=auth, nc={nc}, cnonce="{self.cnonce}"'
        else:
            response, extra = _md5(f"{ha1}:{self.nonce}:{ha2}"), ""
        return (
            f'{self.header}: Digest username="{user}", realm="{self.realm}", '
            f'nonce="{self.nonce}", uri="{uri}", response="{response}", algorithm=MD5{extra}'
        )


class RawSipClient:
    """One account (`user`@`domain`) talking to a proxy at `proxy` (host, port) over UDP."""

    def __init__(self, user: str, password: str, domain: str, proxy: tuple[str, int]) -> None:
        self.user, self.password, self.domain, self.proxy = user, password, domain, proxy
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.port = self.sock.getsockname()[1]
        self.tag = secrets.token_hex(6)
        self.cseq = 0
        self.challenge: Challenge | None = None
        # Requests without a final answer yet, by Via branch: [datagram, next resend, interval].
        self.pending: dict[str, list] = {}
        self.retransmissions = 0
        self.finals: dict[int, int] = {}  # status -> how many requests ended with it

    def _request(self, method: str, uri: str, extra: str = "", body: str = "") -> str:
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        auth = ""
        if self.challenge is not None:
            auth = self.challenge.answer(method, uri, self.user, self.password) + "\r\n"
        return (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{self.user}@{self.domain}>;tag={self.tag}\r\n"
            f"To: <{uri}>\r\n"
            f"Call-ID: {secrets.token_hex(10)}@bench\r\n"
            f"CSeq: {self.cseq} {method}\r\n{extra}{auth}"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )

    def send_message(self, to: str, body: str) -> float:
        """Send one MESSAGE; the time it left (time.monotonic()). Resent as UDP requires."""
        extra = "Content-Type: text/plain\r\n"
        text = self._request("MESSAGE", to, extra, body)
        branch = re.search(r"branch=([^;\r]+)", text).group(1)  # type: ignore[union-attr]
        data = text.encode()
        sent = time.monotonic()
        self.sock.sendto(data, self.proxy)
        self.pending[branch] = [data, sent + T1, T1]
        return sent

    def retransmit(self) -> None:
        """Resend what is still unanswered when its timer fires (RFC 3261 timer A/E)."""
        now = time.monotonic()
        for entry in self.pending.values():
            if entry[1] <= now:
                self.sock.sendto(entry[0], self.proxy)
                self.retransmissions += 1
                entry[2] = min(entry[2] * 2, 4.0)
                entry[1] = now + entry[2]

    def receive(self, timeout: float) -> Received | None:
        self.sock.settimeout(max(timeout, 0.0))
        try:
            data, _ = self.sock.recvfrom(65535)
        except (TimeoutError, BlockingIOError):  # timeout 0 makes the socket non-blocking
            return None
        msg = Received(time.monotonic(), data.decode(errors="replace"))
        if msg.is_request and not msg.text.startswith("ACK"):
            self._answer_ok(msg)
        elif not msg.is_request and msg.status >= 200:
            branch = re.search(r"branch=([^;\r]+)", msg.header("Via"))
            # Count each request once: a resent request may be answered twice.
            if branch and self.pending.pop(branch.group(1), None) is not None:
                self.finals[msg.status] = self.finals.get(msg.status, 0) + 1
        return msg

    def _answer_ok(self, request: Received) -> None:
        vias = re.findall(r"^Via:.*?\r\n", request.text, re.M | re.I)
        headers = "".join(vias) + "".join(
            f"{h}: {request.header(h)}\r\n" for h in ("From", "To", "Call-ID", "CSeq")
        )
        self.sock.sendto(
            f"SIP/2.0 200 OK\r\n{headers}Content-Length: 0\r\n\r\n".encode(), self.proxy
        )

    def authenticate(self, to: str, timeout: float = 5.0) -> None:
        """Send one MESSAGE to learn the proxy's challenge; later requests carry credentials."""
        self.send_message(to, "ok: bench handshake")
        self._until_final(timeout, learn=True)

    def register(self, expires: int = 300, timeout: float = 5.0) -> None:
        """REGISTER our socket as the contact of user@domain (answering the 401)."""
        uri = f"sip:{self.domain}"
        contact = f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\nExpires: {expires}\r\n"
        for _ in range(2):
            text = self._request("REGISTER", uri, contact).replace(
                f"To: <{uri}>", f"To: <sip:{self.user}@{self.domain}>"
            )
            self.sock.sendto(text.encode(), self.proxy)
            status = self._until_final(timeout, learn=True)
            if status == 200:
                self.challenge = None  # a REGISTER challenge is not the proxy's
                return
        raise RuntimeError(f"REGISTER of {self.user} failed: {status}")

    def _until_final(self, timeout: float, learn: bool) -> int:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.receive(left)
            if msg is None or msg.is_request or msg.status < 200:
                continue
            if learn and msg.status in (401, 407):
                self._learn(msg)
            return msg.status
        raise TimeoutError("no final response")

    def _learn(self, response: Received) -> None:
        name = "Proxy-Authenticate" if response.status == 407 else "WWW-Authenticate"
        value = response.header(name)
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', value))
        header = "Proxy-Authorization" if response.status == 407 else "Authorization"
        qop = "auth" if "auth" in fields.get("qop", "").split(",") else None
        self.challenge = Challenge(header, fields["realm"], fields["nonce"], qop)

    def close(self) -> None:
        self.sock.close()
