"""Access against forged senders on the real agent, direct mode (issue 13, items 14, 15, 17).

Forgers send from other loopback addresses (127.0.0.5, 127.0.0.9: the lab's peers and a raw
UDP socket), as someone elsewhere on the LAN would. Outcomes are read where they cannot
race: the `message/in` record of each MESSAGE says what became of its command.
"""

from __future__ import annotations

import base64
import json
import socket
import time

from agent.core.totp import totp
from lab.configs import agent_toml
from lab.ports import free_port
from lab.rawsip import raw_message
from lab.waiting import wait_until

KEY = b"12345678901234567890"
SECRET = base64.b32encode(KEY).decode()
LAMP, GATE = 17, 18


def _records(probe, topic: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(m.payload) for m in probe.messages(topic)]


def _record_of(probe, topic: str, body: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(
        probe.wait_for(topic, lambda m: json.loads(m.payload)["body"] == body).payload
    )


def test_forgers_can_neither_drain_nor_reset_a_users_rate_limit(
    mosquitto, agent_factory, peer_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/message/in")
    port = free_port()
    agent = agent_factory(
        agent_toml(
            listen=f"127.0.0.1:{port}",
            mosquitto=mosquitto,
            device_id=device_id,
            allow=("alice",),
            on_forbidden="silent",
            access_extra="rate_per_minute = 1\nrate_burst = 3",
        )
    )
    agent.wait_ready()
    to = f"sip:agent@127.0.0.1:{port}"
    alice = peer_factory(uri="sip:alice@127.0.0.1")
    forger = peer_factory(uri="sip:alice@127.0.0.1", listen="127.0.0.5:0")
    for i in range(10):
        assert forger.send(to, f"ok: forged {i}" if i else "status")["code"] == 200
    _record_of(probe, f"{B}/message/in", "ok: forged 9")
    # Her own bucket, at her own address, is untouched by the forger's ten.
    assert alice.send(to, "on lamp")["code"] == 200
    assert alice.wait_message(lambda e: e["body"].startswith("ok: lamp"))["body"] == "ok: lamp on"

    for _ in range(2):
        alice.send(to, "status")
    # Drained now. 1100 forged strangers (more than the 1024 stranger buckets) evict
    # nothing of hers: her next command is still over the limit.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.9", 0))
        for batch in range(11):
            for i in range(100):
                raw_message(port, sock, b"status", f"sip:stranger{batch * 100 + i}@127.0.0.1")
            wait_until(
                lambda n=batch: len(_records(probe, f"{B}/message/in")) >= 13 + (n + 1) * 100,
                30,
                f"batch {batch} of forged strangers relayed",
            )
    assert alice.send(to, "off lamp")["code"] == 200
    record = _record_of(probe, f"{B}/message/in", "off lamp")
    assert record["command"]["result"] == ""  # rate-limited, not carried out
    assert agent.pin(LAMP) is True


def _code_config(port: int, mosquitto, device_id: str, extra_access: str = "") -> str:  # type: ignore[no-untyped-def]
    return agent_toml(
        listen=f"127.0.0.1:{port}",
        mosquitto=mosquitto,
        device_id=device_id,
        allow=("owner",),
        access_extra=f'require_code = ["gate"]\nrate_burst = 100\n{extra_access}',
        extra=(
            f'[access.users."sip:alice@127.0.0.1"]\ntotp_secret = "{SECRET}"\n'
            f'[access.users."mqtt:local"]\ntotp_secret = "{SECRET}"\n'
        ),
    )


def test_wrong_codes_lock_the_gate_with_an_alert(mosquitto, agent_factory, peer_factory, device_id):
    port = free_port()
    agent = agent_factory(_code_config(port, mosquitto, device_id))
    agent.wait_ready()
    to = f"sip:agent@127.0.0.1:{port}"
    forger = peer_factory(uri="sip:alice@127.0.0.1", listen="127.0.0.5:0")
    for i in range(5):
        forger.send(to, f"{i:06d} on gate")
        assert forger.wait_message()["body"] == "error: forbidden"
    wait_until(lambda: "ALERT: 5 wrong one-time codes" in agent.log.read_text(), 10, "alert")
    alice = peer_factory(uri="sip:alice@127.0.0.1")
    alice.send(to, f"{totp(KEY, time.time())} on gate")
    assert alice.wait_message()["body"] == "error: forbidden"  # locked, even for her
    assert agent.pin(GATE) is False


def test_a_code_works_once_across_a_restart_and_from_sip_to_mqtt_and_is_never_logged(
    tmp_path, mosquitto, agent_factory, peer_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/command/result", f"{B}/availability")
    state = tmp_path / "state"
    port = free_port()
    config = _code_config(port, mosquitto, device_id)
    first = agent_factory(config, extra_env={"STATE_DIRECTORY": str(state)})
    first.wait_ready()
    # `online` comes after the agent's subscriptions: from then on B/command is heard.
    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online")
    alice = peer_factory(uri="sip:alice@127.0.0.1")
    code = totp(KEY, time.time())
    alice.send(f"sip:agent@127.0.0.1:{port}", f"{code} on gate")
    assert alice.wait_message()["body"] == "ok: gate on"
    first.terminate()
    assert first.wait_exit()["code"] == 0

    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"offline")
    second = agent_factory(config, extra_env={"STATE_DIRECTORY": str(state)})
    second.wait_ready()
    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online")
    still_valid = {totp(KEY, time.time() + s) for s in (-30, 0, 30)}
    probe.publish(f"{B}/command", f"{code} on gate")
    result = json.loads(probe.wait_for(f"{B}/command/result").payload)
    assert code in still_valid, "the code expired before the test could replay it"
    assert result["result"] == "error: one-time code not accepted (wrong, expired or already used)"
    assert second.pin(GATE) is False
    # pjsip logged the MESSAGE whole (debug level), its body masked.
    assert "******" + " on gate\n--end msg--" in first.log.read_text()
    for agent in (first, second):
        assert code not in agent.log.read_text()
