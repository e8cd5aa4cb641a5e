"""What the SIP adapter keeps per account: its transport, its pjsua2 Account, the MESSAGEs it
sent and its registration's recovery. Owner thread only.

With `[[sip.accounts]]` a device registers a PBX extension and a public number at once:
each account has a transport of its own (so each registrar sees the Contact of the port
it was registered from), replies leave by the account a request came in on, and each
account's MESSAGE statuses are matched to its own sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pjsua2 as pj

from agent.adapters.sip import listen as sip_listen
from agent.adapters.sip import net as sipnet
from agent.adapters.sip.send import MessageSender
from agent.config.model import SipConfig
from agent.core.ports import SipError


@dataclass
class Slot:
    """One account: its config, transport and pjsua2 objects (kept referenced while pjsua2
    may call them)."""

    config: SipConfig
    tid: int = -1
    local_address: str = ""
    account: pj.Account | None = None
    sender: MessageSender = field(default_factory=MessageSender)
    recovery: sipnet.Recovery | None = None
    unregistering: bool = False

    @property
    def name(self) -> str:
        return self.config.name

    def create_transport(self, ep: pj.Endpoint) -> None:
        """Its listeners (both families for `[::]`, agent.adapters.sip.listen); the one it sends
        by."""
        self.tid, self.local_address = sip_listen.create(ep, self.config)

    @property
    def port(self) -> int:
        return int(self.local_address.rsplit(":", 1)[1])


class Slots:
    """The accounts in config order; the first is the one presence and `status` lead with."""

    def __init__(self, configs: tuple[SipConfig, ...]) -> None:
        self.all = [Slot(c) for c in configs]
        self._by_name = {s.name: s for s in self.all}

    @property
    def first(self) -> Slot:
        return self.all[0]

    def get(self, name: str | None) -> Slot:
        """The account called `name` (None: the first); SipError if there is none."""
        if name is None:
            return self.first
        slot = self._by_name.get(name)
        if slot is None:
            known = ", ".join(self._by_name)
            raise SipError(f"no SIP account {name!r} (accounts: {known})")
        return slot

    def guarded_tcp(self) -> Slot | None:
        """The first account on TCP or TLS: the one whose listener the kernel filter guards."""
        return next((s for s in self.all if s.config.transport != "udp"), None)
