"""One SIP OPTIONS over UDP: is a SIP server or user agent answering on host:port?"""

from __future__ import annotations

import secrets
import socket
import time

from .netns import socket_in


def sip_options(host: str, port: int, timeout: float = 1.0, netns: str | None = None) -> str | None:
    """The reply's text, or None if nothing answered within `timeout` seconds.

    With `netns`, the probe is sent from inside that network namespace.
    """
    with socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        local_port = sock.getsockname()[1]
        token = secrets.token_hex(8)
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK{token};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:lab-probe@{host}>;tag={token}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {token}@{host}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (host, port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return None
            except ConnectionRefusedError:
                return None  # ICMP port unreachable: not listening yet
            text = data.decode(errors="replace")
            if token in text:
                return text
        return None
