"""Events that other threads post to the owner loop's inbox.

They are small and frozen: the thread that posts one never touches it again, and
only the owner thread acts on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.core.record import record

if TYPE_CHECKING:
    # Only a status request carries one (agent.adapters.status_socket imports it then).
    from concurrent.futures import Future


@record
class StopRequested:
    """A signal (or a test) asked the agent to shut down."""

    reason: str


@record
class ReloadRequested:
    """SIGHUP (`systemctl reload sipagent`): read the config again, apply what can change live."""

    source: str = "SIGHUP"  # what asked


@record
class StatusLogRequested:
    """SIGUSR1/SIGUSR2: log the status and the counters; nothing changes."""

    source: str


@record
class MqttConnected:
    """The broker accepted the connection; retained state must be announced again."""


@record
class MqttDisconnected:
    """The MQTT connection was lost (posted from paho's thread)."""

    reason: str


@record
class MqttMessage:
    """A message arrived on one of the topics the agent subscribes to."""

    topic: str
    payload: bytes
    # The broker sent it because it was retained, not because someone published it now.
    retained: bool = False


@record
class MqttOversize:
    """A message over its topic's size bound: only its size is kept (agent.core.mqtt_requests)."""

    topic: str
    size: int
    limit: int
    retained: bool = False


@record
class InputChanged:
    """A GPIO input settled in a new state (posted from gpiozero's callback thread)."""

    name: str
    active: bool


@record
class MqttPublished:
    """The broker acknowledged the publish with this message id (PUBACK for QoS 1)."""

    mid: int


@record
class StatusRequested:
    """A local client asked for the status (agent.adapters.status_socket); the owner thread answers
    by setting `reply`'s result to a JSON-ready dict."""

    reply: Future[dict[str, object]]


Event = (
    StopRequested
    | ReloadRequested
    | StatusRequested
    | StatusLogRequested
    | MqttConnected
    | MqttDisconnected
    | MqttMessage
    | MqttOversize
    | InputChanged
    | MqttPublished
)
# What broker clients send: the inbox may drop these under a flood, never the others.
FROM_BROKER_CLIENTS = (MqttMessage, MqttOversize)
