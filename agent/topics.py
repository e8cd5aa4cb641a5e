"""The MQTT topic scheme: every topic the agent uses is named here, once."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import MqttConfig


@dataclass(frozen=True)
class Topics:
    """The MQTT topic names under one base topic."""

    base: str
    groups: tuple[str, ...] = ()  # fleet groups (mqtt.groups): commands for all members
    group_prefix: str = "sipagent/group"

    @classmethod
    def of(cls, mqtt: MqttConfig) -> Topics:
        return cls(mqtt.base_topic, mqtt.groups, mqtt.group_prefix)

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def message_in(self) -> str:
        return f"{self.base}/message/in"

    @property
    def message_send(self) -> str:
        return f"{self.base}/message/send"

    @property
    def message_sent(self) -> str:
        return f"{self.base}/message/sent"

    @property
    def command(self) -> str:
        return f"{self.base}/command"

    @property
    def command_result(self) -> str:
        return f"{self.base}/command/result"

    def group_command(self, group: str) -> str:
        """`<group_prefix>/<group>/command`: one command line for every member of the group."""
        return f"{self.group_prefix}/{group}/command"

    def group_of_command(self, topic: str) -> str | None:
        """The group whose command topic this is (one of ours), or None."""
        return next((g for g in self.groups if topic == self.group_command(g)), None)

    @property
    def call_in(self) -> str:
        return f"{self.base}/call/in"

    @property
    def registration(self) -> str:
        return f"{self.base}/registration"

    @property
    def outbox(self) -> str:
        """Retained: the outbox's fill level and what its full policy dropped or refused."""
        return f"{self.base}/outbox"

    def output_state(self, name: str) -> str:
        return f"{self.base}/output/{name}/state"

    def output_set(self, name: str) -> str:
        return f"{self.base}/output/{name}/set"

    @property
    def output_set_pattern(self) -> str:
        return f"{self.base}/output/+/set"

    def output_name_from_set(self, topic: str) -> str | None:
        """The output named by a `B/output/<name>/set` topic, or None for any other topic."""
        prefix, suffix = f"{self.base}/output/", "/set"
        if topic.startswith(prefix) and topic.endswith(suffix):
            name = topic[len(prefix) : -len(suffix)]
            if name and "/" not in name:
                return name
        return None

    @property
    def presence_state(self) -> str:
        return f"{self.base}/presence/state"

    @property
    def presence_set(self) -> str:
        return f"{self.base}/presence/set"

    def input_state(self, name: str) -> str:
        return f"{self.base}/input/{name}/state"

    def buddy_state(self, contact_id: str) -> str:
        return f"{self.base}/buddy/{contact_id}/state"

    def subscriptions(self) -> tuple[str, ...]:
        """The topics the agent listens on (Home Assistant's status topic is added by the link)."""
        own = (self.message_send, self.command, self.output_set_pattern, self.presence_set)
        return own + tuple(self.group_command(g) for g in self.groups)


def ha_status_topic(discovery_prefix: str) -> str:
    """Home Assistant publishes `online` here when it (re)starts: time to announce again."""
    return f"{discovery_prefix}/status"
