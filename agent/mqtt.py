"""The paho-mqtt adapter. paho's network thread only posts events to the inbox."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.events import MqttConnected, MqttDisconnected, MqttMessage
from agent.inbox import Inbox
from agent.topics import Topics

log = logging.getLogger(__name__)

ONLINE, OFFLINE = b"online", b"offline"


class MqttLink:
    """A connection to the broker that reconnects by itself and re-subscribes on every connect."""

    def __init__(self, config: MqttConfig, topics: Topics, inbox: Inbox) -> None:
        self.config = config
        self.topics = topics
        self._inbox = inbox
        self.connected = False
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=True
        )
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(ca_certs=config.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        # The broker publishes this for us when the connection dies without a goodbye.
        client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def start(self) -> None:
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        self._client.loop_start()
        log.info("MQTT connecting to %s:%d", self.config.host, self.config.port)

    def stop(self) -> None:
        """Say goodbye (availability offline) and stop the network thread."""
        if self.connected:
            info = self._client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError) as err:
                log.warning("MQTT goodbye not confirmed: %s", err)
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Queue a publish; paho sends it now or after the next reconnect."""
        self._client.publish(topic, payload, qos=self.config.qos, retain=retain)

    # -- paho's thread ------------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.config.host, rc)
            return
        self.connected = True
        # Subscriptions do not survive a reconnect with a clean session: renew them here,
        # before `online`: the broker handles our packets in order, so whoever sees
        # `online` can be sure that commands sent to us are no longer dropped.
        client.subscribe([(t, self.config.qos) for t in self.topics.subscriptions()])
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)
        self._inbox.put(MqttConnected())

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        was = self.connected
        self.connected = False
        if was:
            log.warning("MQTT connection to %s lost: %s", self.config.host, rc)
            self._inbox.put(MqttDisconnected(str(rc)))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._inbox.put(MqttMessage(message.topic, message.payload))
