"""The test lab itself works: Kamailio, the pjsua2 peer, Mosquitto and the MQTT probe."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest

from lab.kamailio import Kamailio
from lab.mqttprobe import MqttProbe
from lab.ports import free_port

# --- ports -----------------------------------------------------------------------------------


def test_free_port_is_free_for_udp_and_tcp_and_never_repeated() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    port = ports.pop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))


# --- registration ------------------------------------------------------------------------


def test_peers_register_over_udp_with_their_passwords(peer_factory, kamailio) -> None:
    for user in ("owner", "eve"):
        peer = peer_factory(user, wait_registered=False)
        reg = peer.wait_registered()
        assert reg["code"] == 200
        assert reg["expires"] > 0
        assert peer.local_uri == kamailio.aor(user)


def test_wrong_password_is_refused_every_time(peer_factory) -> None:
    peer = peer_factory("eve", password="not-evepw", wait_registered=False)
    first = peer.wait_event("reg")
    assert first["code"] in (401, 403), first
    # Try again: the registrar must keep refusing, never answer 200.
    peer.register()
    second = peer.wait_event("reg")
    assert second["code"] in (401, 403), second
    peer.sync()
    assert all(e["code"] != 200 for e in peer.events if e.get("event") == "reg")


def test_register_for_another_user_is_forbidden(peer_factory, kamailio) -> None:
    # Valid credentials of eve, but trying to register owner's address.
    peer = peer_factory("eve", uri=kamailio.aor("owner"), wait_registered=False)
    reg = peer.wait_event("reg")
    assert reg["code"] == 403, reg


def test_peer_registers_over_tcp_and_receives_a_message(peer_factory, kamailio) -> None:
    tcp_peer = peer_factory("watcher", transport="tcp")
    owner = peer_factory("owner")
    sent = owner.send(kamailio.aor("watcher"), "over tcp")
    assert sent["code"] in (200, 202), sent
    msg = tcp_peer.wait_message()
    assert msg["body"] == "over tcp"
    assert msg["from"] == kamailio.aor("owner")


# --- MESSAGE -----------------------------------------------------------------------------


def test_message_is_routed_to_the_registered_user(peer_factory, kamailio) -> None:
    owner = peer_factory("owner")
    eve = peer_factory("eve")
    sent = owner.send(kamailio.aor("eve"), "hello eve ✓")
    assert sent["code"] in (200, 202), sent
    msg = eve.wait_message()
    assert msg["from"] == kamailio.aor("owner")
    assert msg["to"] == kamailio.aor("eve")
    assert msg["body"] == "hello eve ✓"
    assert msg["content_type"] == "text/plain"


def test_messages_sent_at_once_arrive_once_each(peer_factory, kamailio) -> None:
    owner = peer_factory("owner")
    eve = peer_factory("eve")
    ids = [owner.send_nowait(kamailio.aor("eve"), f"n{i}") for i in range(10)]
    codes = [owner.wait_sent(msg_id)["code"] for msg_id in ids]
    assert codes == [200] * 10
    bodies = [eve.wait_message()["body"] for _ in range(10)]
    # Concurrent MESSAGEs over UDP may overtake each other: once each, in any order.
    assert sorted(bodies) == sorted(f"n{i}" for i in range(10))
    with pytest.raises(AssertionError):
        eve.wait_message(timeout=0.3)


def test_messages_sent_one_after_another_arrive_in_order(peer_factory, kamailio) -> None:
    owner = peer_factory("owner")
    eve = peer_factory("eve")
    for i in range(10):  # each accepted (200 from eve, through Kamailio) before the next
        assert owner.send(kamailio.aor("eve"), f"n{i}")["code"] == 200
    assert [eve.wait_message()["body"] for _ in range(10)] == [f"n{i}" for i in range(10)]


def test_message_to_unregistered_user_gets_404(peer_factory, kamailio) -> None:
    gone = peer_factory("watcher40")
    gone.register(renew=False)  # unregister
    unreg = gone.wait_event("reg")
    assert unreg["code"] == 200
    owner = peer_factory("owner")
    for user in ("watcher40", "nosuchuser"):
        sent = owner.send(kamailio.aor(user), "anyone there?")
        assert sent["code"] in (404, 480), (user, sent)


def test_forged_from_is_refused(peer_factory, kamailio) -> None:
    eve = peer_factory("eve")
    # Authenticates as owner (valid credentials) but claims to be eve in From.
    forger = peer_factory(
        "owner", uri=kamailio.aor("eve"), register=False, name="forger", password="ownerpw"
    )
    sent = forger.send(kamailio.aor("eve"), "this is really eve")
    assert sent["code"] == 403, sent
    with pytest.raises(AssertionError):
        eve.wait_message(timeout=0.3)


def test_from_outside_the_domain_is_refused(kamailio) -> None:
    reply = _raw_message(kamailio, "sip:mallory@elsewhere.example", kamailio.aor("eve"))
    assert reply.startswith("SIP/2.0 403"), reply


def test_unauthenticated_message_is_challenged(kamailio) -> None:
    reply = _raw_message(kamailio, kamailio.aor("owner"), kamailio.aor("eve"))
    assert reply.startswith("SIP/2.0 407"), reply
    assert f'realm="{kamailio.domain}"' in reply


def _raw_message(server: Kamailio, from_uri: str, to_uri: str) -> str:
    """Send one MESSAGE without credentials over UDP; the first line of the reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        body = "hi"
        request = (
            f"MESSAGE {to_uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-raw-{port};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{from_uri}>;tag=raw{port}\r\n"
            f"To: <{to_uri}>\r\n"
            f"Call-ID: raw-{port}@127.0.0.1\r\n"
            "CSeq: 1 MESSAGE\r\n"
            "Content-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        sock.settimeout(5)
        sock.sendto(request.encode(), (server.host, server.port))
        return sock.recv(65535).decode(errors="replace")


# --- presence ----------------------------------------------------------------------------


def test_watcher_sees_published_presence_through_kamailio(peer_factory, kamailio) -> None:
    owner = peer_factory("owner", publish=True)
    watcher = peer_factory("watcher")
    watcher.subscribe(kamailio.aor("owner"))
    watcher.wait_buddy(lambda e: e["sub_state"] == "ACTIVE")

    owner.set_presence("busy", "in a meeting")
    busy = watcher.wait_buddy(lambda e: e["activity"] == "busy")
    assert busy["status"] == "online"
    assert busy["basic"] == "open"
    assert busy["note"] == "in a meeting"
    assert busy["uri"] == kamailio.aor("owner")

    owner.set_presence("offline", "gone home")
    offline = watcher.wait_buddy(lambda e: e["basic"] == "closed")
    assert offline["status"] == "offline"

    owner.set_presence("available", "back")
    back = watcher.wait_buddy(lambda e: e["basic"] == "open" and e["note"] == "back")
    assert back["activity"] == "unknown"


# --- Kamailio restart ------------------------------------------------------------------------


def test_kamailio_restart_keeps_port_and_users(kamailio_factory, peer_factory) -> None:
    server = kamailio_factory()
    port = server.port
    owner = peer_factory("owner", server=server)
    eve = peer_factory("eve", server=server)
    server.restart()
    assert server.port == port
    assert server.options() is not None
    # usrloc is in memory only: registrations are gone until the clients register again.
    assert owner.send(server.aor("eve"), "lost")["code"] == 404
    eve.register()
    eve.wait_registered()
    assert owner.send(server.aor("eve"), "after restart")["code"] == 200
    assert eve.wait_message()["body"] == "after restart"
    assert server.log.exists()


# --- the peer process itself ---------------------------------------------------------------


def test_peer_reports_bad_commands(peer_factory) -> None:
    peer = peer_factory("owner")
    peer.command("no-such-op")
    error = peer.wait_event("error")
    assert "no-such-op" in error["text"]
    peer.proc.stdin.write(b"{not json\n")
    peer.proc.stdin.flush()
    assert "not json" in peer.wait_event("error")["text"]


@pytest.mark.parametrize("how", ["quit", "eof", "sigterm"])
def test_peer_shuts_down_cleanly(peer_factory, kamailio, how: str) -> None:
    owner = peer_factory("owner")
    peer = peer_factory("eve")
    if how == "quit":
        peer.command("quit")
    elif how == "eof":
        peer.proc.stdin.close()
    else:
        peer.proc.send_signal(signal.SIGTERM)
    try:
        code = peer.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"peer did not exit after {how}")
    # 0, not a pjlib assertion abort (SIGABRT = -6) at interpreter exit.
    assert code == 0
    # It unregistered on the way out: Kamailio no longer knows a contact for eve.
    assert owner.send(kamailio.aor("eve"), "still there?")["code"] == 404


# --- Mosquitto and the MQTT probe --------------------------------------------------------------


def test_probe_receives_what_it_publishes(mosquitto) -> None:
    with MqttProbe(mosquitto.host, mosquitto.port, topics=("lab/echo/#",)) as probe:
        probe.publish("lab/echo/one", "payload 1", qos=1)
        probe.publish("lab/echo/two", b"\x00\x01", qos=0, retain=True)
        one = probe.wait_for("lab/echo/+")
        assert (one.topic, one.payload, one.qos, one.retain) == (
            "lab/echo/one",
            b"payload 1",
            1,
            False,
        )
        two = probe.wait_for("lab/echo/two")
        assert two.payload == b"\x00\x01"
        assert [m.topic for m in probe.messages("lab/#")] == ["lab/echo/one", "lab/echo/two"]
        # Clear the retained message so the session broker stays clean.
        probe.publish("lab/echo/two", b"", retain=True)


def test_persistent_probe_survives_broker_restart(mosquitto_factory) -> None:
    broker = mosquitto_factory()
    port = broker.port
    with MqttProbe(
        broker.host, port, topics=("lab/restart/#",), client_id="lab-restart", clean_session=False
    ) as probe:
        probe.publish("lab/restart/before", "1")
        assert probe.wait_for("lab/restart/before").payload == b"1"
        broker.restart()
        assert broker.port == port
        # Published right after the restart, possibly before the probe is back: the broker
        # must queue it for the persistent session.
        with MqttProbe(broker.host, port, topics=("lab/none",)) as publisher:
            publisher.publish("lab/restart/after", "2", qos=1)
        after = probe.wait_for("lab/restart/after", timeout=15)
        assert (after.payload, after.qos) == (b"2", 1)
        probe.wait_connected(connects=2)
