"""The MQTT topic scheme: every topic the agent uses is named here, once."""

from __future__ import annotations

from agent.config.model import MqttConfig
from agent.core.record import record

# What a topic the agent listens on is for (Topics.kind); all but "ha_status" are commands.
COMMAND_KINDS = frozenset(
    {
        "command",
        "group_command",
        "output_set",
        "presence_set",
        "presence_status_set",
        "presence_note_set",
        "message_send",
    }
)


@record
class Topics:
    """The MQTT topic names under one base topic."""

    base: str
    groups: tuple[str, ...] = ()  # fleet groups (mqtt.groups): commands for all members
    group_prefix: str = "sipagent/group"
    discovery_prefix: str = ""  # Home Assistant's; "" when discovery is off

    @classmethod
    def of(cls, mqtt: MqttConfig) -> Topics:
        return cls(mqtt.base_topic, mqtt.groups, mqtt.group_prefix, mqtt.discovery_prefix)

    def kind(self, topic: str) -> str | None:
        """Which of the agent's inbound topics this is (see COMMAND_KINDS), or None."""
        if topic == self.command:
            return "command"
        if topic == self.message_send:
            return "message_send"
        if topic == self.presence_set:
            return "presence_set"
        if topic == self.presence_status_set:
            return "presence_status_set"
        if topic == self.presence_note_set:
            return "presence_note_set"
        if self.output_name_from_set(topic) is not None:
            return "output_set"
        if self.group_of_command(topic) is not None:
            return "group_command"
        if self.discovery_prefix and topic == ha_status_topic(self.discovery_prefix):
            return "ha_status"
        return None

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

    def account_registration(self, account: str) -> str:
        """One account's registration, when there are several ([[sip.accounts]])."""
        return f"{self.base}/registration/{account}"

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

    @property
    def presence_status_set(self) -> str:
        """The status alone (Home Assistant's select); the note stays."""
        return f"{self.base}/presence/status/set"

    @property
    def presence_note_set(self) -> str:
        """The note alone (Home Assistant's text); empty: back to the configured template."""
        return f"{self.base}/presence/note/set"

    def input_state(self, name: str) -> str:
        return f"{self.base}/input/{name}/state"

    def input_event(self, name: str) -> str:
        """Each change of an input as it happens (never retained): device triggers."""
        return f"{self.base}/input/{name}/event"

    @property
    def diagnostics(self) -> str:
        """Retained: pjproject version and whether it is outdated, the last error."""
        return f"{self.base}/diagnostics"

    def buddy_state(self, contact_id: str) -> str:
        return f"{self.base}/buddy/{contact_id}/state"

    def subscriptions(self) -> tuple[str, ...]:
        """The topics the agent listens on (Home Assistant's status topic is added by the link)."""
        own: tuple[str, ...] = (
            self.message_send, self.command, self.output_set_pattern, self.presence_set
        )  # fmt: skip
        own += (self.presence_status_set, self.presence_note_set)
        return own + tuple(self.group_command(g) for g in self.groups)


def ha_status_topic(discovery_prefix: str) -> str:
    """Home Assistant publishes `online` here when it (re)starts: time to announce again."""
    return f"{discovery_prefix}/status"
