"""The paho-mqtt adapter. paho's network thread only posts events to the inbox.

Delivery order is the agent's job, not paho's (docs/mqtt.md: paho re-sends what it still
holds after a reconnect, not always in order, and loses it when the process dies). So this
link publishes only while a connection is up, and when one drops it makes paho forget every
unacknowledged publish: the outbox sends those again, in its own order, on the next connect.

With several brokers (mqtt.hosts) the link also picks the broker: agent.core.brokers decides,
paho's thread moves on after each failure, and a small thread looks back at the preferred
broker while connected elsewhere.
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

from agent.config.model import Broker, MqttConfig
from agent.core.brokers import BrokerChoice
from agent.core.events import (
    MqttConnected,
    MqttDisconnected,
    MqttMessage,
    MqttOversize,
    MqttPublished,
)
from agent.core.mqtt_requests import PayloadBounds
from agent.core.ports import Inbox
from agent.core.topics import Topics, ha_status_topic

log = logging.getLogger(__name__)

# How long the failback check waits for the preferred broker to accept a TCP connection.
PROBE_TIMEOUT_S = 5.0

ONLINE, OFFLINE = b"online", b"offline"


class MqttLink:
    """A connection to the broker that reconnects by itself and re-subscribes on every connect."""

    def __init__(
        self, config: MqttConfig, topics: Topics, inbox: Inbox, bounds: PayloadBounds
    ) -> None:
        self.config = config
        self.topics = topics
        self._inbox = inbox
        self._bounds = bounds
        self.connected = False
        self.session = 0  # counts successful connections
        # Guards `connected` against paho's thread: a publish either happens before the
        # disconnect callback wipes paho's queue, or is refused after it.
        self._lock = threading.Lock()
        brokers = config.brokers or (Broker(config.host, config.port),)
        self._choice = BrokerChoice(brokers, config.failback_s)  # under _lock
        self._switching = False  # a failback closed the connection on purpose
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a connect changed when to look back
        self._failback: threading.Thread | None = None
        if len(brokers) > 1 and config.failback_s > 0:
            self._failback = threading.Thread(
                target=self._failback_loop, name="mqtt-failback", daemon=True
            )
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
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client

    @property
    def broker(self) -> str:
        """The broker connected to, or being tried next."""
        with self._lock:
            return str(self._choice.current)

    def start(self) -> None:
        broker = self._choice.current
        self._client.connect_async(broker.host, broker.port, self.config.keepalive)
        self._client.loop_start()
        if self._failback is not None:
            self._failback.start()
        log.info("MQTT connecting to %s", broker)

    def stop(self) -> None:
        """Say goodbye (availability offline) and stop the network thread."""
        self._stopping.set()  # before the goodbye: it must not be taken for a stale will
        if self.connected:
            info = self._client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError) as err:
                log.warning("MQTT goodbye not confirmed: %s", err)
        self._wake.set()
        self._client.disconnect()
        self._client.loop_stop()
        if self._failback is not None and self._failback.is_alive():
            self._failback.join(timeout=1.0)  # a probe under way ends on its own

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
            # The broker closes the connection next: _on_disconnect moves on.
            log.warning("MQTT broker %s refused the connection: %s", self.broker, rc)
            return
        # Subscriptions do not survive a reconnect with a clean session: renew them here,
        # before `online`: the broker handles our packets in order, so whoever sees
        # `online` can be sure that commands sent to us are no longer dropped.
        sock = client.socket()
        if isinstance(sock, socket.socket):  # TCP or TLS (the agent uses no WebSocket)
            # paho leaves Nagle on: a small publish then waits for the broker's delayed ACK
            # (40 ms on Linux) whenever the previous one is still unacknowledged.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Our own availability too: see _on_message.
        topics = [*self.topics.subscriptions(), self.topics.availability]
        if self.config.discovery_prefix:
            topics.append(ha_status_topic(self.config.discovery_prefix))
        client.subscribe([(t, self.config.qos) for t in topics])
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        with self._lock:
            self.connected = True
            self.session += 1
            self._choice.connected()
            broker = self._choice.current
        self._wake.set()
        log.info("MQTT connected to %s", broker)
        self._inbox.put(MqttConnected())

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            was = self.connected
            self.connected = False
            _forget_unacknowledged(client)
            lost = self._choice.current
            if self._switching:
                self._switching = False  # already pointed at the preferred broker
            else:
                self._next_broker(client)
            following = self._choice.current
        if was:
            log.warning("MQTT connection to %s lost: %s; next try %s", lost, rc, following)
            self._inbox.put(MqttDisconnected(str(rc)))

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        with self._lock:
            failed = self._choice.current
            self._next_broker(client)
            following = self._choice.current
        log.info("MQTT broker %s unreachable; next try %s", failed, following)

    def _next_broker(self, client: paho.Client) -> None:
        """Point paho's next reconnect (after its backoff) at the next broker (lock held)."""
        broker = self._choice.failed()
        # paho's `host` setter refuses while a connection is still being torn down, and
        # its own reconnect only ever retries the same host: set what reconnect() reads.
        client._host = broker.host
        client._port = broker.port

    # -- the failback thread -------------------------------------------------------------

    def _failback_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                delay = self._choice.failback_in() if self.connected else None
            if delay is None or delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            preferred = self._choice.preferred
            accepts = _accepts(preferred)
            with self._lock:
                if self._stopping.is_set() or not self.connected:
                    continue
                if self._choice.failback_in() != 0:
                    continue  # the connection changed while we looked
                if not accepts:
                    self._choice.failback_refused()
                    log.info("MQTT preferred broker %s still unreachable", preferred)
                    continue
                current = self._choice.current
                self._choice.fail_back()
                self._switching = True
                self._client._host = preferred.host
                self._client._port = preferred.port
                sock = self._client.socket()
            log.warning("MQTT failing back from %s to the preferred broker %s", current, preferred)
            if isinstance(sock, socket.socket):
                # Not SSLSocket.shutdown: that unwraps TLS under paho's reading thread. paho
                # sees the end of the stream, reports the disconnect and reconnects to the
                # preferred broker; the old one publishes our will (offline) there.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self.topics.availability:
            # A live (not retained) `offline` while we are connected is the will of an earlier
            # connection arriving late: from a bridged or clustered broker after a failover,
            # or a broker noticing a half-open connection only now. It would leave the
            # retained state wrong; say `online` again.
            if message.payload == OFFLINE and not message.retain and not self._stopping.is_set():
                log.info("MQTT stale will (offline) seen on %s: online again", message.topic)
                client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
            return
        # Bounded here, before the payload is queued: an oversize one is forgotten at once
        # and only its size reaches the owner loop, which answers with a clear error.
        size, limit = len(message.payload), self._bounds.limit(self.topics.kind(message.topic))
        retained = bool(message.retain)
        if size > limit:
            self._inbox.put(MqttOversize(message.topic, size, limit, retained))
        else:
            self._inbox.put(MqttMessage(message.topic, bytes(message.payload), retained))

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        # Called with paho's message lock held: post, nothing more.
        self._inbox.put(MqttPublished(mid))


def _accepts(broker: Broker) -> bool:
    """Whether the broker accepts a TCP connection now."""
    try:
        with socket.create_connection((broker.host, broker.port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _forget_unacknowledged(client: paho.Client) -> None:
    """Drop paho's copies of unacknowledged publishes so it cannot re-send them itself.

    paho has no public call for this; its `_out_messages` is the queue it replays after a
    reconnect (paho-mqtt 2.x). The outbox still holds every event among them.
    """
    with client._out_message_mutex:
        client._out_messages.clear()
        client._inflight_messages = 0
