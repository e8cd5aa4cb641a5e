"""The gpiozero adapter for inputs: door contacts and buttons, behind names from the config.

gpiozero calls `when_activated`/`when_deactivated` on its own threads; those callbacks only
post an `InputChanged` event, and everything else happens on the owner thread.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Callable, Sequence

from gpiozero import DigitalInputDevice

from agent.config.model import InputConfig
from agent.core.events import Event, InputChanged

log = logging.getLogger(__name__)

Post = Callable[[Event], None]


class Inputs:
    """Named digital inputs; each change is posted as InputChanged(name, active)."""

    def __init__(self, configs: Sequence[InputConfig], post: Post) -> None:
        self._configs = {c.name: c for c in configs}
        self._devices: dict[str, DigitalInputDevice] = {}
        self._post = post
        for cfg in configs:
            # gpiozero derives the active level from the pull resistor and refuses an explicit
            # one next to it; a different level is an inversion we apply ourselves.
            device = DigitalInputDevice(
                cfg.pin,
                pull_up=cfg.pull_up,
                bounce_time=cfg.bounce_ms / 1000 if cfg.bounce_ms else None,
            )
            device.when_activated = self._callback(cfg.name, not cfg.inverted)
            device.when_deactivated = self._callback(cfg.name, cfg.inverted)
            self._devices[cfg.name] = device
            log.info(
                "input %s on %s ready (pull-%s, active %s, now %s)",
                cfg.name,
                cfg.pin,
                "up" if cfg.pull_up else "down",
                "high"
                if (cfg.active_high is None and not cfg.pull_up) or cfg.active_high
                else "low",
                "active" if self.is_active(cfg.name) else "inactive",
            )

    def _callback(self, name: str, active: bool) -> Callable[[], object]:
        """On gpiozero's thread: post the change, nothing else.

        A builtin (operator.call) with every argument bound: gpiozero takes it as it is. For
        a Python function it would inspect the signature, and `inspect` (with `ast` and
        `dis`) costs 0.7 MB for the life of the service (agent.lean).
        """
        return functools.partial(operator.call, self._post, InputChanged(name, active))

    def names(self) -> Sequence[str]:
        return list(self._devices)

    def is_active(self, name: str) -> bool:
        return bool(self._devices[name].is_active) != self._configs[name].inverted

    def close(self) -> None:
        for device in self._devices.values():
            device.when_activated = device.when_deactivated = None
            device.close()
        self._devices.clear()
