"""Which MQTT broker to use next, and when to go back to the preferred one (pure, no I/O).

The policy (README "Fleets and several brokers"): brokers are tried in the order of
`mqtt.hosts`, the first being the preferred one. Every failure (a lost connection, a refused
TCP connect or CONNACK) moves on to the next broker, round-robin, at paho's usual backoff.
A working broker is kept. Once connected to any other than the preferred one, the agent
checks the preferred one every `failback_s` seconds and switches back only when it accepts a
connection; 0 turns failing back off (the agent then stays wherever it works).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.config.model import Broker


class BrokerChoice:
    """The broker to connect to now, and whether it is time to try the preferred one again."""

    def __init__(
        self,
        brokers: tuple[Broker, ...],
        failback_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not brokers:
            raise ValueError("at least one broker is needed")
        self.brokers = brokers
        self.failback_s = failback_s
        self._clock = clock
        self._index = 0
        self._failback_at: float | None = None  # None: not connected elsewhere, or never

    @property
    def current(self) -> Broker:
        return self.brokers[self._index]

    @property
    def preferred(self) -> Broker:
        return self.brokers[0]

    def failed(self) -> Broker:
        """The current broker failed (lost, refused): the one to try next."""
        self._index = (self._index + 1) % len(self.brokers)
        self._failback_at = None
        return self.current

    def connected(self) -> None:
        """Connected to `current`: away from the preferred broker, schedule a look back."""
        if self._index != 0 and self.failback_s > 0:
            self._failback_at = self._clock() + self.failback_s
        else:
            self._failback_at = None

    def failback_in(self) -> float | None:
        """Seconds until the preferred broker is due a try (0: now); None: not to be tried."""
        if self._failback_at is None:
            return None
        return max(0.0, self._failback_at - self._clock())

    def failback_refused(self) -> None:
        """The preferred broker did not accept a connection: stay, and look again later."""
        if self._failback_at is not None:
            self._failback_at = self._clock() + self.failback_s

    def fail_back(self) -> Broker:
        """Switch to the preferred broker (it accepted a connection just now)."""
        self._index = 0
        self._failback_at = None
        return self.current
