"""Events that other threads post to the owner loop's inbox.

They are small and frozen: the thread that posts one never touches it again, and
only the owner thread acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StopRequested:
    """A signal (or a test) asked the agent to shut down."""

    reason: str


@dataclass(frozen=True)
class MqttConnected:
    """The broker accepted the connection; retained state must be announced again."""


@dataclass(frozen=True)
class MqttDisconnected:
    """The MQTT connection was lost (posted from paho's thread)."""

    reason: str


@dataclass(frozen=True)
class MqttMessage:
    """A message arrived on one of the topics the agent subscribes to."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class InputChanged:
    """A GPIO input settled in a new state (posted from gpiozero's callback thread)."""

    name: str
    active: bool


@dataclass(frozen=True)
class MqttPublished:
    """The broker acknowledged the publish with this message id (PUBACK for QoS 1)."""

    mid: int


Event = (
    StopRequested | MqttConnected | MqttDisconnected | MqttMessage | InputChanged | MqttPublished
)
