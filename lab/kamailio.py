"""Kamailio as the lab's registrar, authenticating proxy and presence server."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Mapping
from pathlib import Path

from . import kamailio_cfg
from .certs import CertPair
from .childproc import ChildProcess, LabServer
from .netns import socket_in
from .ports import free_port
from .sipoptions import sip_options
from .waiting import require_binary

DEFAULT_USERS: Mapping[str, str] = {
    "agent": "agentpw",
    "owner": "ownerpw",
    "eve": "evepw",
    "watcher": "watcherpw",
}


def numbered_users(prefix: str, count: int, start: int = 1) -> dict[str, str]:
    """``{prefix1: prefix1pw, ...}``: accounts for tests with many watchers."""
    return {f"{prefix}{i}": f"{prefix}{i}pw" for i in range(start, start + count)}


class Kamailio(LabServer):
    """One Kamailio listening on UDP and TCP 127.0.0.1:``port``, everything under ``workdir``.

    Users are local to ``domain`` (which does not resolve: clients use ``proxy_uri`` /
    ``registrar_uri``) and authenticate with digest (realm = ``domain``).
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        users: Mapping[str, str] = DEFAULT_USERS,
        domain: str = "sipagent.test",
        shm_mb: int = 64,
        *,
        host: str = "127.0.0.1",
        netns: str | None = None,
        tls: CertPair | None = None,
        tls_client_ca: Path | None = None,
        also_listen: tuple[str, ...] = (),
        modules: str = "",
        before_save: str = "",
    ) -> None:
        """``host``/``netns``: listen on ``host`` inside network namespace ``netns`` (see
        lab.netns); ``tls``: also a TLS listener on ``tls_port`` with that certificate;
        ``tls_client_ca``: that listener demands a client certificate signed by this CA."""
        self.workdir = Path(workdir)
        # Finished transactions linger for tm's wait timer: thousands per second need more.
        self.shm_mb = shm_mb
        self.port = port if port is not None else free_port()
        self._host = host
        self.netns = netns
        self.tls = tls
        self.tls_client_ca = tls_client_ca
        self.also_listen = also_listen  # more addresses (IPv6 ones too), same port
        self.modules = modules  # more Kamailio script before the routing (outbound, ...)
        self.before_save = before_save  # script run on an authenticated REGISTER before save()
        self.tls_port = free_port("tcp") if tls is not None else None
        self.users: dict[str, str] = dict(users)
        self.domain = domain
        self.log = self.workdir / "kamailio.log"
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.dbdir = self.workdir / "db"
        self.rundir = self.workdir / "run"
        # One secret for the life of this object, so restart() keeps nonces valid.
        self._secret = secrets.token_hex(16)
        self._child: ChildProcess | None = None

    # --- addresses -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def uri_host(self) -> str:
        """The host as written in a URI (an IPv6 address in brackets)."""
        return f"[{self._host}]" if ":" in self._host else self._host

    def registrar_at(self, host: str) -> str:
        """The registrar on another of its addresses (``also_listen``)."""
        return f"sip:[{host}]:{self.port}" if ":" in host else f"sip:{host}:{self.port}"

    @property
    def tls_uri(self) -> str:
        """The registrar over TLS (``sips:`` would work as well; the tests use both)."""
        return f"sip:{self.uri_host}:{self.tls_port};transport=tls"

    @property
    def proxy_uri(self) -> str:
        return f"sip:{self.uri_host}:{self.port};lr"

    @property
    def registrar_uri(self) -> str:
        return f"sip:{self.uri_host}:{self.port}"

    def aor(self, user: str) -> str:
        """``sip:user@domain``."""
        return f"sip:{user}@{self.domain}"

    # --- lifecycle -------------------------------------------------------------------------

    name = "kamailio"
    start_timeout = 15.0

    def _waiting_for(self) -> str:
        return f"kamailio to answer OPTIONS on {self.host}:{self.port}"

    def _command(self) -> list[str]:
        binary = require_binary(
            "kamailio", "the Debian packages kamailio and kamailio-presence-modules"
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rundir.mkdir(exist_ok=True)
        kamailio_cfg.write_dbtext(self.dbdir)
        tls = None
        if self.tls is not None:
            assert self.tls_port is not None
            tls_cfg = self.workdir / "tls.cfg"
            lines = [
                "[server:default]",
                "method = TLSv1.2+",
                f"private_key = {self.tls.key}",
                f"certificate = {self.tls.cert}",
            ]
            if self.tls_client_ca is None:
                lines += ["verify_certificate = no", "require_certificate = no"]
            else:
                lines += [
                    "verify_certificate = yes",
                    "require_certificate = yes",
                    f"ca_list = {self.tls_client_ca}",
                ]
            tls_cfg.write_text("\n".join(lines) + "\n")
            tls = (self.tls_port, tls_cfg)
        self.cfg_path.write_text(
            kamailio_cfg.render(
                port=self.port,
                domain=self.domain,
                users=self.users,
                dbdir=self.dbdir,
                secret=self._secret,
                host=self.uri_host,
                tls=tls,
                also_listen=self.also_listen,
                modules=self.modules,
                before_save=self.before_save,
            )
        )
        return [
            binary,
            "-f", str(self.cfg_path),
            "-DD",  # stay in the foreground (a child of the tests) but fork the workers
            "-E",  # log to stderr, which goes to self.log
            "-P", str(self.rundir / "kamailio.pid"),
            "-Y", str(self.rundir),  # runtime dir: nothing under /var/run
            "-w", str(self.workdir),
            "-m", str(self.shm_mb),
            "-M", "8",
        ]  # fmt: skip

    # --- probing ---------------------------------------------------------------------------

    def _answers(self) -> bool:
        assert self._child is not None
        self._child.check_alive()
        reply = self.options(timeout=0.25)
        if reply is None or not reply.startswith("SIP/2.0 200"):
            return False
        # Kamailio opens its TCP listener in the same startup step, but the tests use TCP too.
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        for port in ports:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            with socket_in(self.netns, family, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.25)
                try:
                    sock.connect((self.host, port))
                except OSError:
                    return False
        return True

    def options(self, timeout: float = 1.0) -> str | None:
        """Send one OPTIONS over UDP; the reply text, or None if none came within ``timeout``."""
        return sip_options(self.host, self.port, timeout, netns=self.netns)
