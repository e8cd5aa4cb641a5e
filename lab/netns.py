"""A small real network for the tests: a home behind a masquerading router, and an internet.

    home (agent)  --veth--  router (nftables masquerade)  --veth--  internet (servers, peers)
    192.0.2.10/24           192.0.2.1 | 198.51.100.2                198.51.100.10, .11

Both ranges are documentation ranges (TEST-NET-1, TEST-NET-2) that exist only inside these
namespaces; nothing is routed out of them (the internet namespace has no default route, the
home namespace routes only to the router). The router's UDP conntrack timeout is short, so a
NAT binding without traffic dies within seconds, and `masquerade random` gives every new
binding a new public port, as many home routers do.

Namespace and interface names carry a prefix unique to the run (`NatLab.prefix`), and `close()`
removes everything, so a failed test leaves nothing behind and two runs do not collide.
Building namespaces needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): without it the lab fails with
a message saying so; it never skips.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from .waiting import require_binary

if TYPE_CHECKING:  # the Kamailio and the peers sit in the namespaces; they import this module
    from .kamailio import Kamailio
    from .peer import Peer

T = TypeVar("T")

HOME_NET = "192.0.2"  # TEST-NET-1
INTERNET_NET = "198.51.100"  # TEST-NET-2
ROUTER_HOME = f"{HOME_NET}.1"
ROUTER_PUBLIC = f"{INTERNET_NET}.2"
HOME_ADDRESS = f"{HOME_NET}.10"
SERVER = f"{INTERNET_NET}.10"
SERVER_ALT = f"{INTERNET_NET}.11"  # a STUN server needs a second address

_CLONE_NEWNET = 0x40000000
_SEQ = itertools.count(1)


class NetnsUnavailable(AssertionError):
    """The machine cannot build the lab network (no root, no `ip`/`nft`)."""


@dataclass(frozen=True)
class Mapping:
    """One UDP binding in the router's conntrack table: private side -> public side."""

    private: tuple[str, int]
    remote: tuple[str, int]
    public: tuple[str, int]
    seconds_left: int


def require_root() -> None:
    if os.geteuid() != 0:
        raise NetnsUnavailable(
            "the network tests build network namespaces and need root (CAP_NET_ADMIN): "
            "run them as root, as CI does"
        )


def run_in(netns: str | None, fn: Callable[[], T]) -> T:
    """Call `fn` on a thread that entered `netns`: sockets it creates stay in that namespace.

    setns(2) changes only the calling thread, so the test process itself stays where it is
    and can still talk to servers on the host's loopback.
    """
    if netns is None:
        return fn()
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    thread = threading.Thread(target=body, name=f"in-{netns}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def socket_in(netns: str | None, family: int, kind: int) -> socket.socket:
    """A socket that lives in `netns` (or here, for None)."""
    return run_in(netns, lambda: socket.socket(family, kind))


class NatLab:
    """The three namespaces and the router between them; `close()` removes them all."""

    def __init__(self, udp_timeout_s: int = 5) -> None:
        require_root()
        self._ip = require_binary("ip", "the Debian package iproute2")
        self._nft = require_binary("nft", "the Debian package nftables")
        # Interface names are limited to 15 characters: keep the prefix short.
        self.prefix = f"sa{os.getpid() % 10000}{next(_SEQ)}{secrets.token_hex(1)}"
        self.home = f"{self.prefix}-home"
        self.router = f"{self.prefix}-rtr"
        self.internet = f"{self.prefix}-net"
        self.udp_timeout_s = udp_timeout_s
        self.home_address = HOME_ADDRESS
        self._home_if = f"{self.prefix}h"
        self._router_home_if = f"{self.prefix}rh"
        self._router_public_if = f"{self.prefix}ri"
        self._internet_if = f"{self.prefix}i"
        self._created: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- building -----------------------------------------------------------------------

    def _run(self, *argv: str, netns: str | None = None, stdin: str | None = None) -> str:
        cmd = [*self.prefix_for(netns), *argv]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise NetnsUnavailable(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
        return done.stdout

    def _build(self) -> None:
        ip = self._ip
        for ns in (self.home, self.router, self.internet):
            self._run(ip, "netns", "add", ns)
            self._created.append(ns)
            self._run(ip, "link", "set", "lo", "up", netns=ns)
        self._veth(self._home_if, self.home, self._router_home_if, self.router)
        self._veth(self._internet_if, self.internet, self._router_public_if, self.router)
        # A new lease's address takes over when the old one goes, instead of going with it.
        self._run("sysctl", "-q", "-w", f"net.ipv4.conf.{self._home_if}.promote_secondaries=1",
                  netns=self.home)  # fmt: skip
        self._address(self.home, self._home_if, f"{HOME_ADDRESS}/24")
        self._run(ip, "route", "add", "default", "via", ROUTER_HOME, netns=self.home)
        self._address(self.router, self._router_home_if, f"{ROUTER_HOME}/24")
        self._address(self.router, self._router_public_if, f"{ROUTER_PUBLIC}/24")
        self._address(self.internet, self._internet_if, f"{SERVER}/24")
        self._address(self.internet, self._internet_if, f"{SERVER_ALT}/24")
        sysctls = {
            "net.ipv4.ip_forward": "1",
            "net.netfilter.nf_conntrack_udp_timeout": str(self.udp_timeout_s),
            "net.netfilter.nf_conntrack_udp_timeout_stream": str(self.udp_timeout_s),
        }
        # The conntrack sysctls appear once the nat table has loaded conntrack in this netns.
        self._run(self._nft, "-f", "-", netns=self.router, stdin=self._ruleset())
        for key, value in sysctls.items():
            self._run("sysctl", "-q", "-w", f"{key}={value}", netns=self.router)

    def _ruleset(self) -> str:
        return f"""
table ip lab_nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat;
        oifname "{self._router_public_if}" masquerade random
    }}
}}
"""

    def _veth(self, a: str, ns_a: str, b: str, ns_b: str) -> None:
        self._run(self._ip, "link", "add", a, "type", "veth", "peer", "name", b)
        self._run(self._ip, "link", "set", a, "netns", ns_a)
        self._run(self._ip, "link", "set", b, "netns", ns_b)
        self._run(self._ip, "link", "set", a, "up", netns=ns_a)
        self._run(self._ip, "link", "set", b, "up", netns=ns_b)

    def _address(self, netns: str, ifname: str, cidr: str) -> None:
        self._run(self._ip, "addr", "add", cidr, "dev", ifname, netns=netns)

    # -- using --------------------------------------------------------------------------

    def prefix_for(self, netns: str | None) -> list[str]:
        """The argv prefix that runs a command inside `netns` (empty for None)."""
        return [] if netns is None else [self._ip, "netns", "exec", netns]

    def cut_link(self) -> None:
        """The home's uplink loses carrier (Wi-Fi drop): nothing passes the router's home side."""
        self._run(self._ip, "link", "set", self._router_home_if, "down", netns=self.router)

    def restore_link(self) -> None:
        self._run(self._ip, "link", "set", self._router_home_if, "up", netns=self.router)

    def wifi_down(self) -> None:
        """The device's own interface goes down (Wi-Fi lost): its address and routes go too."""
        self._run(self._ip, "link", "set", self._home_if, "down", netns=self.home)

    def wifi_up(self) -> None:
        """The interface comes back and gets its address and default route again (DHCP)."""
        self._run(self._ip, "link", "set", self._home_if, "up", netns=self.home)
        self._run(self._ip, "route", "replace", "default", "via", ROUTER_HOME, netns=self.home)

    def change_home_address(self, last_octet: int) -> str:
        """A new DHCP lease: the home interface gets a new address and loses the old one."""
        new = f"{HOME_NET}.{last_octet}"
        self._address(self.home, self._home_if, f"{new}/24")
        self._run(self._ip, "addr", "del", f"{self.home_address}/24", "dev", self._home_if,
                  netns=self.home)  # fmt: skip
        # Deleting the old address may take the default route with it.
        self._run(self._ip, "route", "replace", "default", "via", ROUTER_HOME, netns=self.home)
        self.home_address = new
        return new

    def udp_mappings(self) -> list[Mapping]:
        """The router's current UDP NAT bindings (from its conntrack table)."""
        text = self._run("cat", "/proc/net/nf_conntrack", netns=self.router)
        found = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 6 or fields[2] != "udp":
                continue
            kv = [f.split("=", 1) for f in fields if "=" in f]
            srcs = [v for k, v in kv if k == "src"]
            dsts = [v for k, v in kv if k == "dst"]
            sports = [int(v) for k, v in kv if k == "sport"]
            dports = [int(v) for k, v in kv if k == "dport"]
            if len(srcs) < 2 or len(dports) < 2:
                continue
            found.append(
                Mapping(
                    private=(srcs[0], sports[0]),
                    remote=(dsts[0], dports[0]),
                    public=(dsts[1], dports[1]),
                    seconds_left=int(fields[4]),
                )
            )
        return found

    def public_of(self, private_port: int, remote: tuple[str, int]) -> tuple[str, int] | None:
        """The public address the router currently maps (home address, port) -> remote to."""
        for m in self.udp_mappings():
            if m.private == (self.home_address, private_port) and m.remote == remote:
                return m.public
        return None

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Delete the namespaces (their veths go with them). Safe to call twice."""
        for ns in reversed(self._created):
            subprocess.run([self._ip, "netns", "del", ns], capture_output=True, check=False)
        self._created.clear()

    def __enter__(self) -> NatLab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def argv_in(lab: NatLab | None, netns: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` run inside `netns` of `lab` (unchanged without a lab)."""
    return [*(lab.prefix_for(netns) if lab else []), *argv]


def internet_owner(peer_factory: Callable[..., Peer], nat_lab: NatLab, server: Kamailio) -> Peer:
    """The owner's phone out in the internet namespace, registered at `server` there."""
    return peer_factory("owner", server=server, netns=nat_lab.internet, listen=f"{SERVER}:0")
