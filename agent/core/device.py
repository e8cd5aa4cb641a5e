"""The device as commands see it (commands.Controls): outputs, presence and the `status`
reply, on top of the GPIO adapter and the presence keeper. Owner thread; a part of
agent.core.agent.Agent, kept apart so that the agent's SIP and MQTT behaviour reads on its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.config.model import OutputConfig
from agent.core import commands
from agent.core.ports import OutputPins
from agent.core.presence import PresenceError

if TYPE_CHECKING:
    from agent.core.bridge import Bridge
    from agent.core.presence_keeper import PresenceKeeper


class DeviceControls:
    """commands.Controls for agent.core.agent.Agent, which sets these attributes."""

    outputs: OutputPins
    presence: PresenceKeeper | None
    bridge: Bridge | None
    started: float

    def status_summary(self) -> str:
        raise NotImplementedError  # the agent's registration and MQTT, in words

    def output_names(self) -> Sequence[str]:
        return self.outputs.output_names()

    def output_config(self, name: str) -> OutputConfig:
        return self.outputs.output_config(name)

    def output_is_on(self, name: str) -> bool:
        return self.outputs.output_is_on(name)

    def set_output(self, name: str, on: bool) -> None:
        self.outputs.set_output(name, on)

    def set_level(self, name: str, level: float) -> None:
        self.outputs.set_level(name, level)

    def pulse(self, name: str, seconds: float) -> None:
        self.outputs.pulse(name, seconds)

    def blink(self, name: str, on_s: float, off_s: float, count: int | None) -> None:
        self.outputs.blink(name, on_s, off_s, count)

    def status_lines(self) -> Sequence[str]:
        outs = ", ".join(self._output_status(n) for n in self.output_names())
        return [
            f"outputs: {outs or 'none'}",
            self.status_summary(),
            *(self.presence.status_lines() if self.presence is not None else ()),
            *([self.bridge.status_line()] if self.bridge is not None else ()),
            f"uptime {_duration(time.monotonic() - self.started)}",
        ]

    def _output_status(self, name: str) -> str:
        word = "on" if self.outputs.output_is_on(name) else "off"
        if self.outputs.output_config(name).pwm:
            word = f"{round(self.outputs.level(name) * 100, 1):g}%"
        running = self.outputs.activity(name)
        return f"{name} {word}" + (f" ({running})" if running else "")

    def set_presence(self, status: str, note: str | None) -> str:
        """The `presence` command; returns the reply text (`ok: ` or `error: ` is added)."""
        if self.presence is None:
            raise commands.CommandError("presence is not available")
        try:
            return self.presence.set(status, note)
        except PresenceError as err:
            raise commands.CommandError(str(err)) from None

    def on_output_changed(self, name: str, on: bool) -> None:
        """Listener for the GPIO adapter: every change of an output is announced."""
        if self.bridge is not None:
            topic = self.bridge.topics.output_state(name)
            self.bridge.publish_state(topic, self.outputs.state_payload(name))
        if self.presence is not None:
            self.presence.on_output_changed()


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
