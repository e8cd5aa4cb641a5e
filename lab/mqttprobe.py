"""An MQTT client in the test process that records everything it receives."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    received: float = field(default_factory=time.time, compare=False)

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


MessagePredicate = Callable[[Message], bool]


class MqttProbe:
    """Subscribes to ``topics`` and records every message, in order of arrival.

    The constructor returns once the broker acknowledged the subscriptions. The client
    re-subscribes on every reconnect, so with a fixed ``client_id`` and
    ``clean_session=False`` it keeps collecting across a broker restart, including QoS 1
    messages the broker queued for it while it was away.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Iterable[str] = ("#",),
        client_id: str | None = None,
        clean_session: bool = True,
        timeout: float = 10.0,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.topics = list(topics)
        self.qos = qos
        # MQTT 3.1.1 forbids an empty client id without a clean session.
        self.client_id = client_id or f"lab-probe-{secrets.token_hex(4)}"
        self._cond = threading.Condition()
        self._messages: list[Message] = []
        self._consumed: set[int] = set()
        self._pending_subs: set[int] = set()
        self.connects = 0  # CONNACKs with success
        self.subscribed = 0  # completed (re)subscriptions
        self.connected = False
        self._last_connect_error: str | None = None

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        # Quick retries: a broker restart in a test takes well under a second.
        client.reconnect_delay_set(min_delay=0.1, max_delay=1.0)  # type: ignore[arg-type]
        if username is not None:
            client.username_pw_set(username, password)
        if ca_file is not None:
            client.tls_set(ca_certs=ca_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        try:
            self._wait(lambda: self.subscribed >= 1, timeout, f"SUBACK from {host}:{port}")
        except AssertionError:
            self.close()
            raise

    # --- paho callbacks (paho's network thread) ---------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            with self._cond:
                self._last_connect_error = str(reason)
                self._cond.notify_all()
            return
        # Subscribing here (not once after connect) is what re-subscribes after a reconnect.
        result, mid = client.subscribe([(topic, self.qos) for topic in self.topics])
        with self._cond:
            self.connects += 1
            self.connected = True
            if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._pending_subs.add(mid)
            self._cond.notify_all()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _props: Any
    ) -> None:
        with self._cond:
            self.connected = False
            self._cond.notify_all()

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, codes: Any, _props: Any
    ) -> None:
        with self._cond:
            # The SUBACK may arrive before subscribe() returned its mid to _on_connect: both
            # run on paho's thread, so the mid is already recorded here.
            self._pending_subs.discard(mid)
            if any(code.is_failure for code in codes):
                self._last_connect_error = f"subscription refused: {codes}"
            else:
                self.subscribed += 1
            self._cond.notify_all()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.qos))
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    # --- waiting ---------------------------------------------------------------------------

    def _wait(self, ready: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = ready()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    extra = (
                        f" (last error: {self._last_connect_error})"
                        if self._last_connect_error
                        else ""
                    )
                    raise AssertionError(
                        f"probe {self.client_id}: no {what} within {timeout:g} s{extra}"
                    )
                self._cond.wait(left)

    def wait_connected(self, connects: int = 1, timeout: float = 10.0) -> None:
        """Wait until the probe connected and subscribed ``connects`` times in total."""
        self._wait(
            lambda: self.connected and self.subscribed >= connects and not self._pending_subs,
            timeout,
            f"connection #{connects} with subscriptions",
        )

    def wait_for(
        self,
        topic: str,
        predicate: MessagePredicate | None = None,
        timeout: float = 10.0,
        consume: bool = True,
    ) -> Message:
        """The oldest message on ``topic`` (MQTT wildcards allowed) matching ``predicate``.

        With ``consume`` (the default) each message is returned by at most one wait_for.
        """

        def find() -> Message | None:
            for i, msg in enumerate(self._messages):
                if i in self._consumed or not mqtt.topic_matches_sub(topic, msg.topic):
                    continue
                if predicate is None or predicate(msg):
                    if consume:
                        self._consumed.add(i)
                    return msg
            return None

        return self._wait(find, timeout, f"message on {topic!r}")

    def messages(self, topic: str = "#") -> list[Message]:
        """Every message received so far on ``topic`` (wildcards allowed), in order."""
        with self._cond:
            return [m for m in self._messages if mqtt.topic_matches_sub(topic, m.topic)]

    # --- publishing ------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        qos: int = 1,
        retain: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Publish and wait until it is sent (QoS 0) or acknowledged (PUBACK/PUBCOMP)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise AssertionError(f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
        # wait_for_publish() raises at once when not connected; paho queues the message and
        # sends it after reconnecting, so wait on its flag instead.
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while not info.is_published():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no PUBACK for {topic!r} within {timeout:g} s")
            pause.wait(min(0.01, left))

    # --- stop ------------------------------------------------------------------------------

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttProbe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def first_seen(probe: MqttProbe, topic: str) -> list[str]:
    """Bodies of the agent's `message/in` records on `topic`, in order of first arrival: a
    record published again (after a reconnect or a restart) has the same id and counts once."""
    seen: dict[str, str] = {}
    for message in probe.messages(topic):
        record = message.json()
        seen.setdefault(record["id"], record["body"])
    return list(seen.values())
