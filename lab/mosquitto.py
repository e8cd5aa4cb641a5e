"""Mosquitto as the lab's MQTT broker."""

from __future__ import annotations

import getpass
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .childproc import ChildProcess, LabServer
from .netns import socket_in
from .ports import free_port
from .waiting import require_binary


class Mosquitto(LabServer):
    """One broker on 127.0.0.1:``port``, persistent, everything under ``workdir``.

    Anonymous unless ``users`` (name -> password) is given; TLS on the same port with
    ``tls`` = (CA certificate, server certificate, server key), e.g. from lab.certs.TestCa.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        netns: str | None = None,
        users: Mapping[str, str] | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """``host``/``netns``: listen on ``host`` inside network namespace ``netns``."""
        self.host = host
        self.netns = netns
        self.users = dict(users) if users else None
        self.tls = tls
        self.workdir = Path(workdir)
        self.port = port if port is not None else free_port("tcp")
        self.log = self.workdir / "mosquitto.log"
        self.cfg_path = self.workdir / "mosquitto.conf"
        self.data_dir = self.workdir / "data"
        self._child: ChildProcess | None = None

    def _config(self) -> str:
        access = ["allow_anonymous true"]
        if self.users is not None:
            access = ["allow_anonymous false", f"password_file {self.workdir / 'passwd'}"]
        if self.tls is not None:
            ca, cert, key = self.tls
            access += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        return "\n".join(
            [
                f"listener {self.port} {self.host}",
                *access,
                # Persistence lets a clean_session=False subscriber get what was queued for it
                # across a broker restart (docs/mqtt.md: otherwise it is dropped).
                "persistence true",
                f"persistence_location {self.data_dir}/",
                # Started as root (CI), mosquitto would switch to the user "mosquitto", which
                # cannot write the persistence file into the test's directory: "root" (or the
                # current user) means "do not switch".
                f"user {getpass.getuser()}",
                # Nagle's algorithm holds a small publish until the client's delayed ACK (40 ms):
                # without this, 1 in ~100 relayed messages arrives 40 ms late.
                "set_tcp_nodelay true",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "connection_messages true",
                "log_timestamp_format %H:%M:%S",
                # No pid file and no user switch: nothing outside workdir.
                "",
            ]
        )

    name = "mosquitto"
    start_timeout = 10.0

    def _waiting_for(self) -> str:
        return f"mosquitto to accept on {self.host}:{self.port}"

    def _command(self) -> list[str]:
        binary = require_binary("mosquitto", "the Debian package mosquitto")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.cfg_path.write_text(self._config())
        if self.users is not None:
            passwd = self.workdir / "passwd"
            passwd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            # mosquitto wants hashes: -U rewrites the plain-text file in place.
            tool = require_binary("mosquitto_passwd", "the Debian package mosquitto")
            subprocess.run([tool, "-U", str(passwd)], check=True, capture_output=True)
        return [binary, "-c", str(self.cfg_path)]

    def _answers(self) -> bool:
        assert self._child is not None
        self._child.check_alive()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket_in(self.netns, family, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.25)
            try:
                sock.connect((self.host, self.port))
            except OSError:
                return False
            return True
