"""A direct-mode agent set up to be attacked: its address, its owner, the soundness check.

target = Target.start(agent_factory, probe_factory, mosquitto, device_id)
target.sound.begin()
... attack target.address ...
target.sound.check(accepted=tokens)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .agentproc import AgentProcess
from .configs import agent_toml
from .mosquitto import Mosquitto
from .mqttprobe import MqttProbe
from .ports import free_port
from .soundness import DirectOwner, Soundness


@dataclass
class Target:
    agent: AgentProcess
    address: tuple[str, int]
    owner: DirectOwner
    sound: Soundness
    probe: MqttProbe
    base_topic: str

    @property
    def uri(self) -> str:
        return f"sip:agent@{self.address[0]}:{self.address[1]}"

    @classmethod
    def start(
        cls,
        agent_factory: Callable[..., AgentProcess],
        probe_factory: Callable[..., MqttProbe],
        mosquitto: Mosquitto,
        device_id: str,
        *,
        transport: str = "udp",
        limits: str = "",
        **config: object,
    ) -> Target:
        """An agent on 127.0.0.1 with MQTT; `limits` are lines for [sip.limits]."""
        port = free_port()
        base = f"sipagent/{device_id}"
        probe = probe_factory(f"{base}/#")
        extra = str(config.pop("extra", ""))
        if limits:
            extra = f"[sip.limits]\n{limits}\n" + extra
        text = agent_toml(
            listen=f"127.0.0.1:{port}",
            transport=transport,
            mosquitto=mosquitto,
            device_id=device_id,
            extra=extra,
            **config,  # type: ignore[arg-type]
        )
        agent = agent_factory(text)
        agent.wait_ready()
        address = ("127.0.0.1", port)
        owner = DirectOwner(address, transport=transport)
        sound = Soundness(agent, owner.status, probe=probe, base_topic=base)
        return cls(agent, address, owner, sound, probe, base)

    def close(self) -> None:
        self.owner.close()


def token() -> str:
    """A marker to put at the start of a body, to find it again on MQTT."""
    return f"hx-{secrets.token_hex(5)}"


def open_sockets(pid: int, kind: str = "udp") -> int:
    """How many `kind` ("udp", "tcp") sockets process `pid` holds open (media would be UDP)."""
    inodes = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in (kind, f"{kind}6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            next(lines)  # the header
            count += sum(1 for line in lines if line.split()[9] in inodes)
    return count
