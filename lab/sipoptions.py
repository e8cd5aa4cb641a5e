"""One SIP OPTIONS over UDP: is a SIP server or user agent answering on host:port?"""

from __future__ import annotations

import secrets
import socket
import time

from .netns import socket_in
from .rawsip import request


def sip_options(host: str, port: int, timeout: float = 1.0, netns: str | None = None) -> str | None:
    """The reply's text, or None if nothing answered within `timeout` seconds.

    With `netns`, the probe is sent from inside that network namespace.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    uri_host = f"[{host}]" if family == socket.AF_INET6 else host
    with socket_in(netns, family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        local_port = sock.getsockname()[1]
        token = secrets.token_hex(8)
        options = request(
            "OPTIONS",
            f"sip:{uri_host}:{port}",
            local=(host, local_port),
            sender=f"sip:lab-probe@{uri_host}",
            call_id=f"{token}@lab",
            headers={"Contact": None},
        )
        sock.sendto(options, (host, port))
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
