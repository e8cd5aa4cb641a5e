"""The paho-mqtt adapter. paho's network thread only posts events to the inbox.

Delivery order is the agent's job, not paho's (FIELD-NOTES.md: paho re-sends what it still
holds after a reconnect, not always in order, and loses it when the process dies). So this
link publishes only while a connection is up, and when one drops it makes paho forget every
unacknowledged publish: the outbox sends those again, in its own order, on the next connect.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.events import MqttConnected, MqttDisconnected, MqttMessage, MqttPublished
from agent.inbox import Inbox
from agent.topics import Topics, ha_status_topic

log = logging.getLogger(__name__)

ONLINE, OFFLINE = b"online", b"offline"


class MqttLink:
    """A connection to the broker that reconnects by itself and re-subscribes on every connect."""

    def __init__(self, config: MqttConfig, topics: Topics, inbox: Inbox) -> None:
        self.config = config
        self.topics = topics
        self._inbox = inbox
        self.connected = False
        self.session = 0  # counts successful connections
        # Guards `connected` against paho's thread: a publish either happens before the
        # disconnect callback wipes paho's queue, or is refused after it.
        self._lock = threading.Lock()
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=True
        )
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            # ca_file None: the system's trust store.
            client.tls_set(ca_certs=config.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        # The broker publishes this for us when the connection dies without a goodbye.
        client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
        # Backoff doubles from 1 s up to reconnect_max while the broker is gone: no busy loop.
        client.reconnect_delay_set(min_delay=1, max_delay=config.reconnect_max_s)
        # The outbox bounds what is in flight; paho must not hold anything back on its own.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
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
        """Publish state now, or drop it while disconnected: state is announced on connect."""
        self.publish_event(topic, payload, retain=retain)

    def publish_event(
        self, topic: str, payload: bytes | str, *, retain: bool = False, session: int | None = None
    ) -> int | None:
        """Publish now; the message id (acknowledged by MqttPublished), or None if not connected
        (or, with `session`, if that connection is no longer the current one)."""
        with self._lock:
            if not self.connected or (session is not None and session != self.session):
                return None
            info = self._client.publish(topic, payload, qos=self.config.qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            # The connection broke under us; the disconnect callback forgets it, the outbox not.
            log.debug("MQTT publish to %s not sent: %s", topic, paho.error_string(info.rc))
            return None
        return int(info.mid)

    # -- paho's thread ------------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.config.host, rc)
            return
        # Subscriptions do not survive a reconnect with a clean session: renew them here,
        # before `online`: the broker handles our packets in order, so whoever sees
        # `online` can be sure that commands sent to us are no longer dropped.
        sock = client.socket()
        if sock is not None:
            # paho leaves Nagle on: a small publish then waits for the broker's delayed ACK
            # (40 ms on Linux) whenever the previous one is still unacknowledged.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        topics = list(self.topics.subscriptions())
        if self.config.discovery_prefix:
            topics.append(ha_status_topic(self.config.discovery_prefix))
        client.subscribe([(t, self.config.qos) for t in topics])
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        with self._lock:
            self.connected = True
            self.session += 1
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)
        self._inbox.put(MqttConnected())

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            was = self.connected
            self.connected = False
            _forget_unacknowledged(client)
        if was:
            log.warning("MQTT connection to %s lost: %s", self.config.host, rc)
            self._inbox.put(MqttDisconnected(str(rc)))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._inbox.put(MqttMessage(message.topic, message.payload))

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        # Called with paho's message lock held: post, nothing more.
        self._inbox.put(MqttPublished(mid))


def _forget_unacknowledged(client: paho.Client) -> None:
    """Drop paho's copies of unacknowledged publishes so it cannot re-send them itself.

    paho has no public call for this; its `_out_messages` is the queue it replays after a
    reconnect (paho-mqtt 2.x). The outbox still holds every event among them.
    """
    with client._out_message_mutex:
        client._out_messages.clear()
        client._inflight_messages = 0
