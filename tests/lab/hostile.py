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


def open_sockets(pid: int) -> int:
    """How many sockets process `pid` holds open."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return count
